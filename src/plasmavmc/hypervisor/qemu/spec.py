"""What a VmSpec means to the QEMU backend before anything starts: its one spec check (`check`).

`cmdline.check_spec` owns what the argv builder can express; this adds what depends on the node
(huge pages) and on the boot image (microvm boots a kernel directly: an image without one needs q35).
"""

from __future__ import annotations

import dataclasses

from plasmavmc.hypervisor.base import UnsupportedFeature
from plasmavmc.hypervisor.qemu import cmdline
from plasmavmc.hypervisor.spec_check import BootImage
from plasmavmc.types.vm import VmSpec


def with_image_defaults(spec: VmSpec, boot: BootImage | None) -> VmSpec:
    """The machine follows the image unless the user chose one: an image without a kernel boots through
    firmware, so it gets q35 (microvm, the default, needs a kernel)."""
    if spec.boot.machine_type or boot is None or boot.has_kernel:
        return spec
    return dataclasses.replace(spec, boot=dataclasses.replace(spec.boot, machine_type="q35"))


def check(spec: VmSpec, boot: BootImage | None) -> None:
    cmdline.check_spec(spec)
    if spec.memory.hugepages:
        raise UnsupportedFeature("hugepages", "huge pages are not configured on this node",
                                 field="spec.memory.hugepages")
    if boot is not None and not boot.has_kernel and cmdline.machine_of(spec) == "microvm":
        raise UnsupportedFeature(
            "firmware_boot", f"image {boot.image_id} has no kernel and microvm boots a kernel directly: "
            "use machine_type=q35 to boot the disk through firmware", field="spec.boot.machine_type")
