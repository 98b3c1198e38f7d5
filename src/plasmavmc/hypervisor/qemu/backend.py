"""`QemuBackend`: the VM lifecycle on one node with QEMU (TCG or KVM), first cut.

What it owns: the runtime dir of each VM (layout in `runtime.py`), the QEMU process (launched with
`-daemonize`, found again by pidfile with the pid-reuse guard of `hypervisor/process.py`), and the exit
watcher task per running VM (`watch.py`). It keeps no state that matters in memory: after an agent
restart `handles()` lists every VM from its `handle.json`, and every method works from files.

Choices of this cut, documented where callers see them:
* `reboot` is a cold reboot: a graceful `stop` then `start` (a new QEMU process, new pid). It works
  with any guest and picks up nothing stale; a pending `wait_exit` returns REQUESTED ("reboot").
  `reset` is the hard, in-process reset (QMP `system_reset`).
* Hot-plug (`hotplug.py`) needs a q35 VM (`spec.boot.machine_type = "q35"`); microvm, the default,
  keeps the fast boot and changes devices only while stopped (the next start has them). Snapshots
  (`snapshots.py`) are qcow2 internal snapshots, with memory when the VM runs.
* NICs are tap devices named from the VM and NIC ids, created by QEMU (`script=no`); attaching them to
  a bridge (and IPAM) is the network provider's job, not done yet.
* Consoles: serial (log file + socket, `hypervisor/console.py`) and VNC (a unix socket per VM; the
  stream is the raw RFB byte stream, for the server's WebSocket gateway to carry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

from plasmavmc.errors import HypervisorError, InvalidArgument, InvalidState
from plasmavmc.hypervisor import cloudinit, common, crashpoints
from plasmavmc.hypervisor.base import (
    BackendCapabilities,
    ConsoleStream,
    ExitReport,
    LocalImage,
    UnsupportedFeature,
    VmHandle,
)
from plasmavmc.hypervisor.common import write_atomic
from plasmavmc.hypervisor.console import SerialConsole, SocketStream, bound_log
from plasmavmc.hypervisor.process import Process, open_process, read_pidfile, run_daemonizing
from plasmavmc.hypervisor.qemu import cmdline, disks, hotplug, qmp, snapshots, watch
from plasmavmc.hypervisor.qemu import spec as qemu_spec
from plasmavmc.hypervisor.qemu.accel import choose_accelerator, host_tsc_khz
from plasmavmc.hypervisor.qemu.runtime import STOP_REQUESTED, RuntimePaths
from plasmavmc.hypervisor.qemu.usage import UsageMeter
from plasmavmc.hypervisor.vmdir import VmDirBackend
from plasmavmc.types.runtime import SnapshotInfo
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

START_TIMEOUT_S = 30.0
_UNIX_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux
# Run states of a VM that is up: paused for a moment by a snapshot save/load, or running.
_RUNNING_STATES = frozenset({"running", "save-vm", "restore-vm", "finish-migrate", "paused"})
REBOOT_STOP_TIMEOUT_S = 30.0


def _host_memory_gib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return max(int(line.split()[1]) // (1024 * 1024), 1)
    return 1


class QemuBackend(VmDirBackend[RuntimePaths]):
    def __init__(self, qemu_path: str, qemu_img_path: str, runtime_dir: Path, accel: str = "auto",
                 tb_size_mib: int = cmdline.DEFAULT_TB_SIZE_MIB) -> None:
        self.qemu_path = qemu_path
        self.qemu_img_path = qemu_img_path
        super().__init__(runtime_dir)
        longest = RuntimePaths.of(self.runtime_dir, "00000000-0000-0000-0000-000000000000").qmp_events
        if len(os.fsencode(longest)) >= _UNIX_PATH_MAX:  # QEMU cannot bind it; say so before any VM
            raise HypervisorError(f"runtime_dir {self.runtime_dir} is too long: unix socket paths under it "
                                  f"would exceed {_UNIX_PATH_MAX - 1} bytes (the limit is 108 with the NUL)")
        self.accelerator = choose_accelerator(accel)
        self._tsc_khz = host_tsc_khz()
        self.tb_size_mib = tb_size_mib  # TCG translation-cache cap (cmdline.accel_arg)
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._usage = UsageMeter()

    # ---------------------------------------------------------------- declarations

    def backend_type(self) -> HypervisorType:
        return HypervisorType.KVM

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            serial_console=True, vnc_console=True, graceful_stop=True, snapshots=True, disk_export=True,
            hot_plug_disk=True, hot_plug_nic=True,  # on q35 VMs (see hotplug.py)
            max_vcpus=os.cpu_count() or 1, max_memory_gib=_host_memory_gib(),
            supported_disk_buses=(DiskBus.VIRTIO,),
            supported_nic_models=(NicModel.VIRTIO_NET, NicModel.E1000),  # e1000 on q35 only
            nested_virtualization=False, accelerator=self.accelerator,
        )

    def supports(self, spec: VmSpec) -> None:
        qemu_spec.check(spec, None)

    # ---------------------------------------------------------------- helpers

    def _paths(self, handle: VmHandle) -> RuntimePaths:
        return RuntimePaths.of(self.runtime_dir, handle.vm_id)

    def _process(self, paths: RuntimePaths) -> Process | None:
        """The running QEMU of this VM, verified against pid reuse; None when it does not run."""
        pid = read_pidfile(paths.pidfile)
        return open_process(pid, cmdline.pidfile_marker(paths)) if pid is not None else None

    def _ensure_watcher(self, paths: RuntimePaths, process: Process) -> None:
        vm_id = paths.root.name
        task = self._watchers.get(vm_id)
        if task is not None and not task.done():
            return
        # The watcher gets its own pidfd: `process` belongs to the caller and is closed by it.
        own = open_process(process.pid, cmdline.pidfile_marker(paths))
        if own is None:
            return
        task = asyncio.create_task(self._watch(paths, own), name=f"qemu-watch-{vm_id}")
        self._watchers[vm_id] = task

    @staticmethod
    async def _watch(paths: RuntimePaths, process: Process) -> None:
        with process:
            await watch.watch(paths, process)

    async def _stop_watcher(self, vm_id: str) -> None:
        task = self._watchers.pop(vm_id, None)
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, 5.0)  # it ends with the process; cancelled if not

    # ---------------------------------------------------------------- lifecycle

    async def create(self, vm: VirtualMachine, images: Mapping[str, LocalImage]) -> VmHandle:
        self.supports(vm.spec)
        common.vm_name(vm.name)
        paths = RuntimePaths.of(self.runtime_dir, vm.id)
        used: dict[str, LocalImage] = {}
        for disk in vm.spec.disks:
            common.device_id(disk.id, "spec.disks.id")
            image = images.get(disk.source.image_id or "")
            if image is None:
                raise InvalidArgument("spec.disks.source", f"image {disk.source.image_id!r} not provided")
            used[image.image_id] = image
        handle = VmHandle(vm_id=vm.id, backend=HypervisorType.KVM, runtime_dir=str(paths.root), name=vm.name)
        self._begin(handle)  # the directory and its handle first: from here on it is adoptable
        for disk in vm.spec.disks:
            image = used[disk.source.image_id or ""]
            await disks.create_overlay(self.qemu_img_path, paths.disk(disk.id), image.disk_path,
                                       image.disk_format, disk.size_gib)
        crashpoints.reached("create:disks")
        self._save_vm(paths, vm, used)
        return handle

    async def start(self, handle: VmHandle) -> None:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            running = self._process(paths)
            if running is not None:
                running.close()
                raise InvalidState(f"VM {handle.vm_id} is already running (pid {running.pid})")
            vm, images = self._load_vm(paths)
            argv = cmdline.build_argv(self.qemu_path, vm, paths, common.image_for_boot(vm.spec, images),
                                      self.accelerator, tsc_khz=self._tsc_khz, tb_size_mib=self.tb_size_mib)
            await asyncio.to_thread(cloudinit.write_seed, paths.root, vm)  # this boot's NICs
            hotplug.write_ports(paths, vm.spec)
            for stale in (paths.pidfile, paths.qmp, paths.qmp_events, paths.console_sock, paths.vnc_sock):
                stale.unlink(missing_ok=True)
            bound_log(paths.console_log)
            result = await run_daemonizing(argv, cwd=paths.root, within_s=START_TIMEOUT_S)
            if result.returncode != 0:
                raise HypervisorError(f"qemu failed to start (exit {result.returncode}): {result.stderr}")
            process = self._process(paths)
            if process is None:
                detail = result.stderr or "no error output"
                raise HypervisorError(f"qemu started but is not running: {detail}")
            crashpoints.reached("start:spawned")
            with process:
                await self._check_running(paths, process)
                started = {"accelerator": self.accelerator, "started_at": str(int(time.time())),
                           "pid": str(process.pid)}
                write_atomic(paths.started, json.dumps(started).encode())
                self._write_handle(paths, VmHandle(
                    vm_id=handle.vm_id, backend=handle.backend, runtime_dir=str(paths.root),
                    name=handle.name, details={**handle.details, **started}))
                self._ensure_watcher(paths, process)

    async def _check_running(self, paths: RuntimePaths, process: Process) -> None:
        try:
            state = await qmp.run_state(paths.qmp)
        except HypervisorError:
            await process.kill()
            raise
        if state != "running":
            await process.kill()
            raise HypervisorError(f"qemu started but its run state is {state!r}, not running")

    async def _stop(self, paths: RuntimePaths, grace_s: float, reason: str) -> None:
        process = self._process(paths)
        if process is None:
            return  # already stopped: stop is idempotent
        with process:
            watch.mark(paths, STOP_REQUESTED, process.pid, reason)
            self._ensure_watcher(paths, process)  # it quits QEMU once the guest has powered off
            with contextlib.suppress(HypervisorError):  # QMP gone or busy: the deadline still holds
                await qmp.execute(paths.qmp, "system_powerdown")
            await process.wait_or_kill(grace_s, f"qemu of vm {paths.root.name}")
        await self._stop_watcher(paths.root.name)

    async def _kill(self, paths: RuntimePaths, reason: str) -> None:
        process = self._process(paths)
        if process is None:
            return
        with process:
            watch.mark(paths, STOP_REQUESTED, process.pid, reason)
            await process.kill()
        await self._stop_watcher(paths.root.name)

    async def reboot(self, handle: VmHandle) -> None:
        """A cold reboot: graceful stop (killed after REBOOT_STOP_TIMEOUT_S), then a fresh start."""
        await self._restart(handle, REBOOT_STOP_TIMEOUT_S, "reboot")

    async def reset(self, handle: VmHandle) -> None:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            if self._running_pid(paths) is None:
                raise InvalidState(f"cannot reset VM {handle.vm_id}: it is not running")
            await qmp.execute(paths.qmp, "system_reset")

    def _forget(self, vm_id: str) -> None:
        self._usage.forget(vm_id)

    # ---------------------------------------------------------------- observation

    async def status(self, handle: VmHandle) -> VmStatus:
        paths = self._paths(handle)
        pid = self._running_pid(paths)
        if pid is None:  # started_at: of the last run, if any (adoption asks such VMs why they ended)
            last = self._started(paths).get("started_at")
            return VmStatus(actual_state=VmState.STOPPED, accelerator=self.accelerator,
                            started_at=int(last) if last else None)
        bound_log(paths.console_log)
        started = self._started(paths)
        if self._lock(handle.vm_id).locked():
            # an operation (snapshot, hot-plug) holds QMP, maybe for long: answer from what we know,
            # so heartbeats never wait behind it
            state, error, usage = VmState.RUNNING, None, self._usage.last(handle.vm_id)
        else:
            state, error = await self._run_state(paths)
            usage = await self._usage.sample(paths, self._vm_or_none(paths), pid)
        return VmStatus(actual_state=state, host_pid=pid, last_error=error,
                        started_at=int(started["started_at"]) if "started_at" in started else None,
                        accelerator=started.get("accelerator", self.accelerator), resource_usage=usage)

    @staticmethod
    async def _run_state(paths: RuntimePaths) -> tuple[VmState, str | None]:
        try:
            run_state = await qmp.run_state(paths.qmp)
        except HypervisorError as exc:
            return VmState.RUNNING, f"QMP unavailable: {exc.message}"
        if run_state == "shutdown":
            return VmState.STOPPING, None  # the guest powered off; the watcher is ending QEMU
        if run_state not in _RUNNING_STATES:
            return VmState.ERROR, f"qemu run state is {run_state}"
        return VmState.RUNNING, None

    def _last_pid(self, paths: RuntimePaths) -> int | None:
        """The pid of the latest run: QEMU removes its pidfile when it exits, started.json stays."""
        pid = read_pidfile(paths.pidfile) or self._started(paths).get("pid")
        return int(pid) if pid else None

    async def wait_exit(self, handle: VmHandle) -> ExitReport:
        paths = self._paths(handle)
        process = self._process(paths)
        if process is None:
            return watch.classify(paths, self._last_pid(paths))
        with process:
            self._ensure_watcher(paths, process)
            await process.wait()
        task = self._watchers.get(handle.vm_id)
        if task is not None:
            await asyncio.wait({task}, timeout=5.0)  # it ends at the exit; its marker is already written
        return watch.classify(paths, process.pid)

    async def console(self, handle: VmHandle, console_type: ConsoleType) -> ConsoleStream:
        paths = self._paths(handle)
        if not paths.root.is_dir():
            raise InvalidState(f"VM {handle.vm_id} has no runtime dir on this node")
        if console_type is ConsoleType.VNC:
            if self._running_pid(paths) is None:
                raise InvalidState(f"VM {handle.vm_id} is not running: its VNC server is down")
            return await SocketStream.connect(paths.vnc_sock)
        return SerialConsole(paths.console_log, paths.console_sock,
                             alive=lambda: self._running_pid(paths) is not None)


    # ---------------------------------------------------------------- devices (hotplug.py)

    async def attach_disk(self, handle: VmHandle, disk: DiskSpec, image: LocalImage | None) -> None:
        """Add a disk: an overlay on `image`, or blank when the disk has no source. A running VM gets it
        at once (q35 only); a stopped one at its next start."""
        if disk.bus is not DiskBus.VIRTIO:
            raise UnsupportedFeature(f"disk_bus_{disk.bus.value}", "only virtio disks", field="disk.bus")
        common.device_id(disk.id, "disk.id")
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            vm, images = self._load_vm(paths)
            updated, running = hotplug.with_disk(vm, disk), self._running_pid(paths) is not None
            if running:
                hotplug.require_hotplug(vm.spec)
            if disk.source.image_id:
                if image is None or image.image_id != disk.source.image_id:
                    raise InvalidArgument("disk.source", f"image {disk.source.image_id!r} not provided")
                await disks.create_overlay(self.qemu_img_path, paths.disk(disk.id), image.disk_path,
                                           image.disk_format, disk.size_gib)
                images = {**images, image.image_id: image}
            else:
                await disks.create_blank(self.qemu_img_path, paths.disk(disk.id), disk.size_gib)
            try:
                if running:
                    await hotplug.plug_disk(paths, disk)
            except BaseException:
                paths.disk(disk.id).unlink(missing_ok=True)
                raise
            self._save_vm(paths, updated, images)

    async def _grow_disk(self, paths: RuntimePaths, disk_id: str, size_gib: int) -> None:
        await disks.grow(self.qemu_img_path, paths.disk(disk_id), size_gib)

    async def detach_disk(self, handle: VmHandle, disk_id: str) -> None:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            vm, images = self._load_vm(paths)
            updated = hotplug.without_disk(vm, disk_id)
            if self._running_pid(paths) is not None:
                hotplug.require_hotplug(vm.spec)
                await hotplug.unplug_disk(paths, disk_id)
            self._save_vm(paths, updated, images)
            paths.disk(disk_id).unlink(missing_ok=True)

    async def attach_nic(self, handle: VmHandle, nic: NetworkSpec) -> None:
        paths = self._paths(handle)
        common.device_id(nic.id, "nic.id")
        async with self._lock(handle.vm_id):
            vm, images = self._load_vm(paths)
            updated = hotplug.with_nic(vm, nic)
            cmdline.check_spec(updated.spec)
            common.mac_address(vm.id, nic)
            if self._running_pid(paths) is not None:
                hotplug.require_hotplug(vm.spec)
                await hotplug.plug_nic(paths, vm, nic)
            self._save_vm(paths, updated, images)
            await asyncio.to_thread(cloudinit.write_seed, paths.root, updated)  # the next boot's NICs

    async def detach_nic(self, handle: VmHandle, nic_id: str) -> None:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            vm, images = self._load_vm(paths)
            updated = hotplug.without_nic(vm, nic_id)
            if self._running_pid(paths) is not None:
                hotplug.require_hotplug(vm.spec)
                await hotplug.unplug_nic(paths, nic_id)
            self._save_vm(paths, updated, images)
            await asyncio.to_thread(cloudinit.write_seed, paths.root, updated)

    # ---------------------------------------------------------------- snapshots (snapshots.py)

    async def snapshot(self, handle: VmHandle, snapshot_id: str) -> None:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            vm, _ = self._load_vm(paths)
            await snapshots.take(paths, self.qemu_img_path, snapshot_id, tuple(d.id for d in vm.spec.disks),
                                 running=self._running_pid(paths) is not None)

    async def restore(self, handle: VmHandle, snapshot_id: str) -> None:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            await snapshots.restore(paths, self.qemu_img_path, snapshot_id,
                                    running=self._running_pid(paths) is not None)

    async def export_disk(self, handle: VmHandle, disk_id: str, dest: Path) -> str:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):  # no start while the copy is made
            if self._running_pid(paths) is not None:
                raise InvalidState(f"VM {handle.vm_id} is running: stop it first to export a disk", field="vm_id")
            vm, _ = self._load_vm(paths)
            if disk_id not in {d.id for d in vm.spec.disks}:
                raise InvalidArgument("disk_id", f"VM {handle.vm_id} has no disk {disk_id!r}")
            await disks.export(self.qemu_img_path, paths.disk(disk_id), dest)
        return "qcow2"

    async def list_snapshots(self, handle: VmHandle) -> list[SnapshotInfo]:
        return [SnapshotInfo(id=s.id, created_at=s.created_at, memory=s.memory, disk_ids=s.disks)
                for s in snapshots.load(self._paths(handle))]

    async def delete_snapshot(self, handle: VmHandle, snapshot_id: str) -> None:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            await snapshots.delete(paths, self.qemu_img_path, snapshot_id,
                                   running=self._running_pid(paths) is not None)
