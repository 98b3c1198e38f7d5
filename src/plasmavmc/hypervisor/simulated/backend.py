"""`SimulatedBackend`: a HypervisorBackend that keeps VMs as in-memory records and runs NO guest.

It exists so that the scheduler, the control plane and agents can be exercised with thousands of nodes
and VMs on one machine (`agent/simulated.py`, `bench/`). It is named SIMULATED everywhere (its
`HypervisorType`, its accelerator "simulated", its console line) and never stands in for QEMU in a test
that claims a VM booted. State lives in memory only: a restarted simulated agent has no VMs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from plasmavmc.errors import VmNotFound
from plasmavmc.hypervisor.base import (
    BackendCapabilities,
    ConsoleStream,
    ExitReport,
    HypervisorBackend,
    LocalImage,
    VmHandle,
)
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    ConsoleType,
    DiskBus,
    DiskSpec,
    HypervisorType,
    NetworkSpec,
    NicModel,
    VirtualMachine,
    VmSpec,
    VmStatus,
)

BANNER = b"SIMULATED hypervisor: no guest runs here\n"

log = logging.getLogger(__name__)


@dataclass
class _SimVm:
    handle: VmHandle
    started_at: int | None = None
    running: bool = False
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    exit_kind: ExitKind = ExitKind.REQUESTED
    snapshots: set[str] = field(default_factory=set)


class _Console:
    def __init__(self) -> None:
        self._sent = False

    async def read(self) -> bytes:
        if self._sent:
            return b""
        self._sent = True
        return BANNER

    async def write(self, data: bytes) -> None:
        return None

    async def close(self) -> None:
        return None


class SimulatedBackend(HypervisorBackend):
    def __init__(self, runtime_dir: str = "simulated") -> None:
        self._runtime_dir = runtime_dir
        self._vms: dict[str, _SimVm] = {}
        #: VMs whose "guest" ignores the ACPI power button: a graceful stop runs its whole timeout, then kills
        self.ignores_acpi: set[str] = set()

    def backend_type(self) -> HypervisorType:
        return HypervisorType.SIMULATED

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            serial_console=True,
            max_vcpus=256,
            max_memory_gib=1024,
            supported_disk_buses=tuple(DiskBus),
            supported_nic_models=tuple(NicModel),
            snapshots=True,
            graceful_stop=True,
            accelerator="simulated",
        )

    def supports(self, spec: VmSpec) -> None:
        return None

    def _get(self, handle: VmHandle) -> _SimVm:
        vm = self._vms.get(handle.vm_id)
        if vm is None:
            raise VmNotFound(f"simulated VM {handle.vm_id} does not exist", field="vm_id")
        return vm

    async def create(self, vm: VirtualMachine, images: Mapping[str, LocalImage]) -> VmHandle:
        handle = VmHandle(vm.id, HypervisorType.SIMULATED, f"{self._runtime_dir}/{vm.id}", vm.name)
        self._vms.setdefault(vm.id, _SimVm(handle))
        return self._vms[vm.id].handle

    async def start(self, handle: VmHandle) -> None:
        vm = self._get(handle)
        vm.running, vm.started_at, vm.exited = True, int(time.time()), asyncio.Event()

    def _exit(self, handle: VmHandle, kind: ExitKind) -> None:
        vm = self._get(handle)
        if vm.running:
            vm.running, vm.exit_kind = False, kind
            vm.exited.set()

    async def stop(self, handle: VmHandle, timeout: float) -> None:
        vm = self._get(handle)
        if handle.vm_id in self.ignores_acpi and vm.running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(vm.exited.wait(), timeout)  # the power button is ignored: wait it out
            log.warning("simulated vm %s: still running %gs after the graceful stop request; killed",
                        handle.vm_id, timeout)
        self._exit(handle, ExitKind.REQUESTED)

    async def kill(self, handle: VmHandle) -> None:
        self._exit(handle, ExitKind.REQUESTED)

    def power_off(self, vm_id: str) -> None:
        """Make a running simulated guest power itself off (e.g. one that ignored ACPI finally gives in)."""
        self._exit(self._vms[vm_id].handle, ExitKind.GUEST_POWEROFF)

    def crash(self, vm_id: str) -> None:
        """Make a running simulated VM exit as if its hypervisor process died (for failure tests)."""
        self._exit(self._vms[vm_id].handle, ExitKind.CRASHED)

    async def reboot(self, handle: VmHandle) -> None:
        self._get(handle).started_at = int(time.time())

    async def reset(self, handle: VmHandle) -> None:
        self._get(handle).started_at = int(time.time())

    async def delete(self, handle: VmHandle) -> None:
        if handle.vm_id in self._vms:
            self._exit(handle, ExitKind.REQUESTED)
            del self._vms[handle.vm_id]

    async def status(self, handle: VmHandle) -> VmStatus:
        vm = self._get(handle)
        state = VmState.RUNNING if vm.running else VmState.STOPPED
        return VmStatus(actual_state=state, started_at=vm.started_at, accelerator="simulated")

    async def wait_exit(self, handle: VmHandle) -> ExitReport:
        vm = self._get(handle)
        await vm.exited.wait()
        return ExitReport(vm.exit_kind, "simulated exit")

    async def attach_disk(self, handle: VmHandle, disk: DiskSpec, image: LocalImage | None) -> None:
        self._get(handle)

    async def detach_disk(self, handle: VmHandle, disk_id: str) -> None:
        self._get(handle)

    async def attach_nic(self, handle: VmHandle, nic: NetworkSpec) -> None:
        self._get(handle)

    async def detach_nic(self, handle: VmHandle, nic_id: str) -> None:
        self._get(handle)

    async def console(self, handle: VmHandle, console_type: ConsoleType) -> ConsoleStream:
        self._get(handle)
        return _Console()

    async def snapshot(self, handle: VmHandle, snapshot_id: str) -> None:
        self._get(handle).snapshots.add(snapshot_id)

    async def restore(self, handle: VmHandle, snapshot_id: str) -> None:
        if snapshot_id not in self._get(handle).snapshots:
            raise VmNotFound(f"simulated VM {handle.vm_id} has no snapshot {snapshot_id}", field="snapshot_id")

    async def handles(self) -> list[VmHandle]:
        return [vm.handle for vm in self._vms.values()]
