"""`HypervisorBackend`: the spec's backend trait (§4.1) as an ABC of async methods, and what it uses.

Features are declared in `BackendCapabilities` (§4.4), never discovered through exceptions: the agent
publishes them with the node, and `supports()` refuses a spec the backend cannot run, naming the
feature, before anything is started. A backend owns one runtime directory per VM
(`<runtime_dir>/<vm_id>/`) holding everything it made for that VM — `delete()` removes exactly that —
and a `handle.json` from which `handles()` re-adopts VMs after an agent restart: hypervisor processes
run detached and outlive the agent.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from plasmavmc.errors import InvalidArgument, PlasmaError, Unimplemented
from plasmavmc.hypervisor.provisional import Commitment, committed
from plasmavmc.types.runtime import ExitKind, SnapshotInfo
from plasmavmc.types.vm import (
    ConsoleType,
    DiskBus,
    DiskSpec,
    HypervisorType,
    NetworkSpec,
    NicModel,
    VirtualMachine,
    VmResize,
    VmSpec,
    VmStatus,
)


class UnsupportedFeature(InvalidArgument):
    """The backend cannot run this spec; `feature` names what it lacks (an INVALID_ARGUMENT, so callers
    in process and over the wire catch the same class)."""

    def __init__(self, feature: str, message: str, *, field: str | None = None) -> None:
        PlasmaError.__init__(self, f"unsupported feature {feature}: {message}", field=field)
        self.feature = feature


@dataclass(frozen=True)
class BackendCapabilities:
    live_migration: bool = False
    hot_plug_cpu: bool = False
    hot_plug_memory: bool = False
    hot_plug_disk: bool = False
    hot_plug_nic: bool = False
    vnc_console: bool = False
    serial_console: bool = False
    nested_virtualization: bool = False
    gpu_passthrough: bool = False
    max_vcpus: int = 1
    max_memory_gib: int = 1
    supported_disk_buses: tuple[DiskBus, ...] = ()
    supported_nic_models: tuple[NicModel, ...] = ()
    # Beyond the spec's list, what the API must know before it accepts an operation:
    snapshots: bool = False
    disk_export: bool = False  # `export_disk`: a stopped VM's disk as a standalone image file
    graceful_stop: bool = False  # a soft power-off the guest can act on (ACPI, Ctrl-Alt-Del)
    accelerator: str = ""  # "kvm", "tcg", ... what this backend runs guests with on this node


@dataclass(frozen=True)
class LocalImage:
    """An image as files on this node: what `create` needs to build a disk and boot from it."""

    image_id: str
    disk_path: Path
    disk_format: str  # "raw" or "qcow2": detected from content, never from the name
    kernel_path: Path | None = None  # direct kernel boot (uncompressed ELF vmlinux)
    initrd_path: Path | None = None
    kernel_cmdline: str = ""

    def to_json(self) -> dict[str, str | None]:
        """A JSON-able form, for the runtime dir (backends re-read it at every start, after restarts)."""
        return {"image_id": self.image_id, "disk_path": str(self.disk_path), "disk_format": self.disk_format,
                "kernel_path": str(self.kernel_path) if self.kernel_path else None,
                "initrd_path": str(self.initrd_path) if self.initrd_path else None,
                "kernel_cmdline": self.kernel_cmdline}

    @classmethod
    def from_json(cls, data: Mapping[str, str | None]) -> LocalImage:
        def path(key: str) -> Path | None:
            value = data.get(key)
            return Path(value) if value else None

        return cls(image_id=str(data["image_id"]), disk_path=Path(str(data["disk_path"])),
                   disk_format=str(data["disk_format"]), kernel_path=path("kernel_path"),
                   initrd_path=path("initrd_path"), kernel_cmdline=str(data.get("kernel_cmdline") or ""))


@dataclass(frozen=True)
class VmHandle:
    """What a backend needs to find a VM again, persisted as `<runtime_dir>/<vm_id>/handle.json`."""

    vm_id: str
    backend: HypervisorType
    runtime_dir: str
    name: str = ""
    details: dict[str, str] = field(default_factory=dict)  # backend-specific, e.g. the accelerator


@dataclass(frozen=True)
class ExitReport:
    kind: ExitKind
    reason: str


class ConsoleStream(Protocol):
    """A byte stream to a VM console: `read` returns b"" at end of stream."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class HypervisorBackend(abc.ABC):
    """One hypervisor on one node. Every method is safe to call again after an agent restart."""

    @abc.abstractmethod
    def backend_type(self) -> HypervisorType: ...

    @abc.abstractmethod
    def capabilities(self) -> BackendCapabilities: ...

    @abc.abstractmethod
    def supports(self, spec: VmSpec) -> None:
        """Raise `UnsupportedFeature` naming what this backend cannot do for `spec`."""

    @abc.abstractmethod
    async def create(self, vm: VirtualMachine, images: Mapping[str, LocalImage]) -> VmHandle:
        """Make the runtime dir and disks (overlays on `images`, keyed by image id); start nothing."""

    @abc.abstractmethod
    async def start(self, handle: VmHandle) -> None:
        """Launch the hypervisor process detached; returns once it runs the guest."""

    @abc.abstractmethod
    async def stop(self, handle: VmHandle, timeout: float) -> None:
        """Ask the guest to power off; kill it when `timeout` seconds pass."""

    @abc.abstractmethod
    async def kill(self, handle: VmHandle) -> None: ...

    @abc.abstractmethod
    async def reboot(self, handle: VmHandle) -> None: ...

    @abc.abstractmethod
    async def reset(self, handle: VmHandle) -> None: ...

    @abc.abstractmethod
    async def delete(self, handle: VmHandle) -> None:
        """Kill if running and remove every file `create` and `start` made."""

    async def purge(self, vm_id: str) -> None:
        """Remove what is left of a VM this node holds no handle for (a create cut short by a crash);
        nothing to do for a backend that keeps no files."""
        return None

    @abc.abstractmethod
    async def status(self, handle: VmHandle) -> VmStatus: ...

    async def open(self) -> None:
        """Start the backend's own background work (the agent calls it once, after adoption); none by default."""
        return None

    async def close(self) -> None:
        """End the backend's own background work and what it runs that is no VM (agent stop); none by default."""
        return None

    async def create_started(self, vm: VirtualMachine, images: Mapping[str, LocalImage],
                             ready: Callable[[VmHandle], None] | None = None, *,
                             output_sent: asyncio.Event | None = None,
                             commitment: Commitment | None = None) -> tuple[VmHandle, float]:
        """`create` then `start` (a create with `start`); returns the handle and when the VM's disks were
        made (unix time). A backend may overlap the two where its hypervisor allows. `ready` is called
        once, with the handle, as soon as the VM's serial console can be followed (`console`): here once
        it started; a backend whose console exists before its boot calls it then, so a follower misses
        none of the guest's first output and reads it as it comes. `output_sent` (RunVm's) is set once
        the guest's first output has gone on to the follower: a backend may leave work of its own that
        can wait until then (`common.after_first_output`), so that it does not share the CPU with it.
        `commitment`: a provisional create's (`provisional.py`); here the create waits for its word."""
        await committed(commitment)
        handle = await self.create(vm, images)
        made_at = time.time()
        await self.start(handle)
        if ready is not None:
            ready(handle)
        return handle, made_at

    async def status_after_start(self, handle: VmHandle) -> VmStatus:
        """The status right after `start` returned, for a caller that records the VM RUNNING (a create with
        `start`): `status` unless the backend can say it without the cost of usage counters."""
        return await self.status(handle)

    @abc.abstractmethod
    async def wait_exit(self, handle: VmHandle) -> ExitReport:
        """Return when the hypervisor process of a started VM exits, saying why."""

    @abc.abstractmethod
    async def attach_disk(self, handle: VmHandle, disk: DiskSpec, image: LocalImage | None) -> None: ...

    @abc.abstractmethod
    async def detach_disk(self, handle: VmHandle, disk_id: str) -> None: ...

    async def resize(self, handle: VmHandle, change: VmResize) -> None:
        """New vCPUs / memory / larger disks for a STOPPED VM, used from its next start. INVALID_STATE
        while it runs; INVALID_ARGUMENT naming the field for a shrink or an unknown disk."""
        raise Unimplemented(f"{self.backend_type().value}: resize is not supported by this backend")

    @abc.abstractmethod
    async def attach_nic(self, handle: VmHandle, nic: NetworkSpec) -> None: ...

    @abc.abstractmethod
    async def detach_nic(self, handle: VmHandle, nic_id: str) -> None: ...

    @abc.abstractmethod
    async def console(self, handle: VmHandle, console_type: ConsoleType) -> ConsoleStream:
        """A stream to the console; for serial it first replays the retained history."""

    @abc.abstractmethod
    async def snapshot(self, handle: VmHandle, snapshot_id: str) -> None:
        """Save the VM's disks (and memory where `capabilities().snapshots` allows) as `snapshot_id`."""

    @abc.abstractmethod
    async def restore(self, handle: VmHandle, snapshot_id: str) -> None:
        """Bring the VM back to `snapshot_id`; what ran or was written after it is gone."""

    async def list_snapshots(self, handle: VmHandle) -> list[SnapshotInfo]:
        """The snapshots `snapshot` made of this VM; a backend without snapshots has none."""
        return []

    async def delete_snapshot(self, handle: VmHandle, snapshot_id: str) -> None:
        raise Unimplemented(f"{self.backend_type().value}: snapshots are not supported by this backend")

    async def export_disk(self, handle: VmHandle, disk_id: str, dest: Path) -> str:
        """Write disk `disk_id` of a STOPPED VM to `dest` as one self-contained image (its backing chain
        flattened; written under a temp name and renamed), returning its format ("qcow2" or "raw").
        INVALID_STATE while the VM runs (the disk would change under the copy); INVALID_ARGUMENT naming
        `disk_id` when the VM has no such disk. Only when `capabilities().disk_export`."""
        raise Unimplemented(f"{self.backend_type().value}: disk export is not supported by this backend")

    @abc.abstractmethod
    async def handles(self) -> list[VmHandle]:
        """Every VM this backend has on this node (from runtime dirs): used to re-adopt after restart."""


class FixedDevices:
    """The device half of `HypervisorBackend` for a backend whose devices are fixed when the VM starts
    (Firecracker, mvisor): every attach and detach is refused, naming the capability it lacks."""

    fixed_devices_reason = "devices are fixed when the VM starts"

    async def attach_disk(self, handle: VmHandle, disk: DiskSpec, image: LocalImage | None) -> None:
        raise UnsupportedFeature("hot_plug_disk", self.fixed_devices_reason)

    async def detach_disk(self, handle: VmHandle, disk_id: str) -> None:
        raise UnsupportedFeature("hot_plug_disk", self.fixed_devices_reason)

    async def attach_nic(self, handle: VmHandle, nic: NetworkSpec) -> None:
        raise UnsupportedFeature("hot_plug_nic", self.fixed_devices_reason)

    async def detach_nic(self, handle: VmHandle, nic_id: str) -> None:
        raise UnsupportedFeature("hot_plug_nic", self.fixed_devices_reason)
