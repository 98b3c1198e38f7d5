"""The shape of a backend's spec check: a pure function of the VM spec and what the control plane knows
about the boot image, raising `UnsupportedFeature` (INVALID_ARGUMENT, feature and field named, with a hint
where one exists) for the first thing the backend cannot run.

Core calls it through the registry (`registry.check_spec_for`) before anything is written — CreateVm,
AttachDisk, AttachNic — and each backend's `supports()` calls the same function on the agent as the
second line, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from plasmavmc.types.vm import VmSpec


@dataclass(frozen=True)
class BootImage:
    """What the control plane knows of the boot disk's image before any byte reaches a node."""

    image_id: str
    has_kernel: bool  # the image names a kernel (`kernel_id` metadata): it can be booted directly


class SpecCheck(Protocol):
    def __call__(self, spec: VmSpec, boot: BootImage | None) -> None:
        """Raise `UnsupportedFeature` for what cannot run; `boot` is None where the image is not at issue."""


def accept_all(spec: VmSpec, boot: BootImage | None) -> None:
    """The check of a backend that runs every valid spec (the simulated one)."""
