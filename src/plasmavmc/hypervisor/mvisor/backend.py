"""`MvisorBackend`: the VM lifecycle on one node with mvisor, a small KVM monitor driven by YAML.

What it owns: each VM's runtime dir (`<runtime_dir>/<vm_id>/`: `handle.json`, the VM and image records,
`config.yaml`, qcow2 overlays on the cached images, `mvisor.pid`, `console.log`, `launch.log`) and its
mvisor process, started detached in its own session so it outlives the agent; `handles()` re-adopts.

mvisor has no control socket, which shapes every choice, all visible in `capabilities()`:
* No soft power-off: `stop` is SIGTERM (mvisor pauses the vCPUs, flushes its disk caches and exits), a
  SIGKILL after the timeout. `graceful_stop` is therefore not claimed.
* A guest's ACPI power-off only *pauses* mvisor (it logs "machine is power off" and keeps running), so
  `wait_exit` watches the console for that line, ends the process and reports GUEST_POWEROFF.
* Serial output is mvisor's stdout (the UART `putchar`s; run under `stdbuf -o0` so no byte waits in a
  stdio buffer), which also carries mvisor's own `debug:` log lines. Input is not wired (mvisor's UART
  reads no stdin): the console is read-only and says so when written to.
* No hot-plug, no snapshots through a public interface, no VNC (mvisor's VNC server listens on every
  address without authentication; `DISPLAY` is set so it does not start one on port 5901).
* `reboot` and `reset` are a stop (SIGTERM) or a kill, then a fresh start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from plasmavmc.errors import HypervisorError, InvalidArgument, InvalidState
from plasmavmc.hypervisor import crashpoints
from plasmavmc.hypervisor.base import (
    BackendCapabilities,
    ConsoleStream,
    ExitReport,
    FixedDevices,
    LocalImage,
    UnsupportedFeature,
    VmHandle,
)
from plasmavmc.hypervisor.common import image_for_boot, mark_stop, stop_reason, vm_name, write_atomic
from plasmavmc.hypervisor.console import SerialConsole, bound_log
from plasmavmc.hypervisor.mvisor import spec
from plasmavmc.hypervisor.process import (
    Process,
    cpu_seconds,
    launch_detached,
    open_process,
    read_pidfile,
    rss_bytes,
    tail,
)
from plasmavmc.hypervisor.qemu import disks
from plasmavmc.hypervisor.vmdir import VmDirBackend
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    ConsoleType,
    DiskBus,
    HypervisorType,
    NicModel,
    ResourceUsage,
    VirtualMachine,
    VmSpec,
    VmStatus,
)

POWER_OFF_LINE = b"machine is power off"
NO_DISPLAY = ":plasmavmc-no-display"  # any DISPLAY keeps mvisor from opening VNC on 0.0.0.0:5901
START_CHECK_S = 0.5
REBOOT_STOP_TIMEOUT_S = 30.0
_FOLLOW_S = 0.1


class _Paths:
    def __init__(self, runtime_dir: Path, vm_id: str) -> None:
        self.root = runtime_dir / vm_id
        self.handle = self.root / "handle.json"
        self.vm = self.root / "vm.json"
        self.images = self.root / "images.json"
        self.config = self.root / "config.yaml"
        self.pidfile = self.root / "mvisor.pid"
        self.console_log = self.root / "console.log"
        self.launch_log = self.root / "launch.log"
        self.started = self.root / "started.json"
        self.stop_marker = self.root / "stop.reason"

    def disk(self, disk_id: str) -> Path:
        return self.root / f"disk-{disk_id}.qcow2"


class _ReadOnlyConsole:
    """mvisor's serial output; writing is refused (its UART takes no input from outside)."""

    def __init__(self, output: SerialConsole) -> None:
        self._output = output

    async def read(self) -> bytes:
        return await self._output.read()

    async def write(self, data: bytes) -> None:
        raise UnsupportedFeature("serial_console_input", "mvisor's serial console is output only")

    async def close(self) -> None:
        await self._output.close()


class MvisorBackend(FixedDevices, VmDirBackend[_Paths]):
    fixed_devices_reason = "mvisor has no control interface for hot-plug"

    def __init__(self, mvisor_path: str, qemu_img_path: str, runtime_dir: Path, bios_path: Path) -> None:
        self.mvisor_path = shutil.which(mvisor_path) or mvisor_path
        self.qemu_img_path = qemu_img_path
        super().__init__(runtime_dir)
        self.bios_path = bios_path
        self._cpu: dict[str, tuple[float, float]] = {}

    def backend_type(self) -> HypervisorType:
        return HypervisorType.MVISOR

    def capabilities(self) -> BackendCapabilities:
        host_memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30
        return BackendCapabilities(
            serial_console=True, disk_export=True, max_vcpus=min(spec.MAX_VCPUS, os.cpu_count() or 1),
            max_memory_gib=max(host_memory_gib, 1), supported_disk_buses=(DiskBus.VIRTIO,),
            supported_nic_models=(NicModel.VIRTIO_NET,), accelerator="kvm")

    def supports(self, vm_spec: VmSpec) -> None:
        spec.check(vm_spec, None)

    # ---------------------------------------------------------------- files

    def _paths(self, handle: VmHandle) -> _Paths:
        return _Paths(self.runtime_dir, handle.vm_id)

    def _process(self, paths: _Paths) -> Process | None:
        pid = read_pidfile(paths.pidfile)
        return open_process(pid, str(paths.config)) if pid is not None else None

    def _run_facts(self, paths: _Paths) -> dict[str, int]:
        """started.json as numbers (pid, started_at, log_offset)."""
        try:
            return {k: int(v) for k, v in self._started(paths).items()}
        except ValueError:
            return {}

    # ---------------------------------------------------------------- create

    async def create(self, vm: VirtualMachine, images: Mapping[str, LocalImage]) -> VmHandle:
        self.supports(vm.spec)
        vm_name(vm.name)
        used: dict[str, LocalImage] = {}
        for i, disk in enumerate(vm.spec.disks):
            image = images.get(disk.source.image_id or "")
            if image is None:
                raise InvalidArgument(f"spec.disks[{i}].source", f"image {disk.source.image_id!r} not provided")
            used[image.image_id] = image
        spec.check_boot_image(image_for_boot(vm.spec, used))
        paths = _Paths(self.runtime_dir, vm.id)
        handle = VmHandle(vm_id=vm.id, backend=HypervisorType.MVISOR, runtime_dir=str(paths.root), name=vm.name)
        self._begin(handle)  # the directory and its handle first: from here on it is adoptable
        for disk in vm.spec.disks:
            image = used[disk.source.image_id or ""]
            await disks.create_overlay(self.qemu_img_path, paths.disk(disk.id), image.disk_path,
                                       image.disk_format, disk.size_gib)
        crashpoints.reached("create:disks")
        config = spec.configuration(vm, {d.id: paths.disk(d.id) for d in vm.spec.disks}, self.bios_path)
        write_atomic(paths.config, spec.to_yaml(config).encode())
        self._save_vm(paths, vm, used)
        return handle

    # ---------------------------------------------------------------- start / stop

    async def start(self, handle: VmHandle) -> None:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            pid = self._running_pid(paths)
            if pid is not None:
                raise InvalidState(f"VM {handle.vm_id} is already running (pid {pid})")
            vm = self._load_vm(paths)[0]
            await self._launch(paths, vm)

    async def _launch(self, paths: _Paths, vm: VirtualMachine) -> None:
        bound_log(paths.console_log)
        offset = paths.console_log.stat().st_size if paths.console_log.exists() else 0
        paths.pidfile.unlink(missing_ok=True)
        argv = ["stdbuf", "-o0", "-e0", self.mvisor_path, "-c", str(paths.config), "-n", vm.name,
                "-u", vm.id, "-p", str(paths.pidfile)]
        pid = launch_detached(argv, cwd=paths.root, stdout=paths.console_log, stderr=paths.launch_log,
                              env={**os.environ, "DISPLAY": NO_DISPLAY})
        write_atomic(paths.pidfile, str(pid).encode())  # mvisor rewrites it with the same pid
        write_atomic(paths.started, json.dumps({"pid": pid, "started_at": int(time.time()),
                                                "log_offset": offset}).encode())
        process = open_process(pid, str(paths.config))
        if process is None or await process.wait(START_CHECK_S):
            raise HypervisorError(f"mvisor exited at once: {tail(paths.launch_log)} {tail(paths.console_log)}")
        process.close()

    async def _stop(self, paths: _Paths, grace_s: float, reason: str) -> None:
        await self._end(paths, reason, grace_s)

    async def _kill(self, paths: _Paths, reason: str) -> None:
        await self._end(paths, reason, 0.0)

    async def _end(self, paths: _Paths, reason: str, grace_s: float) -> None:
        """SIGTERM (mvisor flushes its disks and exits) and SIGKILL after `grace_s`; 0 kills at once."""
        process = self._process(paths)
        if process is None:
            return
        with process:
            mark_stop(paths.stop_marker, process.pid, reason)
            if grace_s > 0:
                await process.terminate(grace_s, signal.SIGTERM)
            else:
                await process.kill()

    async def reboot(self, handle: VmHandle) -> None:
        await self._restart(handle, REBOOT_STOP_TIMEOUT_S, "reboot")

    async def reset(self, handle: VmHandle) -> None:
        await self._restart(handle, 0.0, "reset")

    def _forget(self, vm_id: str) -> None:
        self._cpu.pop(vm_id, None)

    # ---------------------------------------------------------------- observation

    async def status(self, handle: VmHandle) -> VmStatus:
        paths = self._paths(handle)
        pid = self._running_pid(paths)
        if pid is None:
            return VmStatus(actual_state=VmState.STOPPED, accelerator="kvm")
        bound_log(paths.console_log)
        started = self._run_facts(paths)
        return VmStatus(actual_state=VmState.RUNNING, host_pid=pid, started_at=started.get("started_at"),
                        accelerator="kvm", resource_usage=self._usage(handle.vm_id, pid))

    def _usage(self, vm_id: str, pid: int) -> ResourceUsage:
        now, cpu = time.monotonic(), cpu_seconds(pid) or 0.0
        last = self._cpu.get(vm_id)
        self._cpu[vm_id] = (now, cpu)
        percent = 100.0 * (cpu - last[1]) / (now - last[0]) if last and now > last[0] else 0.0
        return ResourceUsage(cpu_percent=round(max(percent, 0.0), 1), memory_used_mib=rss_bytes(pid) // 2**20)

    async def wait_exit(self, handle: VmHandle) -> ExitReport:
        """The process's end, or the guest's ACPI power-off (which only pauses mvisor: ended here)."""
        paths = self._paths(handle)
        process = self._process(paths)
        started = self._run_facts(paths)
        if process is None:
            return self._classify(paths, started.get("pid"), started.get("log_offset", 0))
        with process:
            watcher = asyncio.create_task(self._power_off_seen(paths, started.get("log_offset", 0), process))
            try:
                await process.wait()
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        return self._classify(paths, process.pid, started.get("log_offset", 0))

    async def _power_off_seen(self, paths: _Paths, offset: int, process: Process) -> None:
        """Follow the console from `offset`, reading only what is new (plus a line's worth of the last
        read, so the line may straddle two reads), until mvisor says the guest powered off."""
        seen = b""
        while process.alive():
            new = _read_from(paths.console_log, offset)
            offset += len(new)
            seen = seen[-len(POWER_OFF_LINE):] + new
            if POWER_OFF_LINE in seen:
                mark_stop(paths.stop_marker, process.pid, "guest_poweroff")
                await process.terminate(10.0)
                return
            await asyncio.sleep(_FOLLOW_S)  # following a file: poll its content, bounded by the process's life

    @staticmethod
    def _classify(paths: _Paths, pid: int | None, offset: int) -> ExitReport:
        if pid is None:
            return ExitReport(ExitKind.CRASHED, "mvisor is not running and left no pidfile")
        if (reason := stop_reason(paths.stop_marker, pid)) == "guest_poweroff":
            return ExitReport(ExitKind.GUEST_POWEROFF, "the guest powered off (ACPI)")
        if reason is not None:
            return ExitReport(ExitKind.REQUESTED, f"{reason} requested")
        return ExitReport(ExitKind.CRASHED, f"mvisor {pid} exited unexpectedly: {tail(paths.launch_log, 400)}")

    async def console(self, handle: VmHandle, console_type: ConsoleType) -> ConsoleStream:
        if console_type is not ConsoleType.SERIAL:
            raise UnsupportedFeature("vnc_console", "mvisor's VNC is not offered (it listens on every address "
                                     "without authentication)", field="console_type")
        paths = self._paths(handle)
        if not paths.root.is_dir():
            raise InvalidState(f"VM {handle.vm_id} has no runtime dir on this node")
        output = SerialConsole(paths.console_log, paths.root / ".no-console-socket",
                               alive=lambda: self._running_pid(paths) is not None)
        return _ReadOnlyConsole(output)

    async def export_disk(self, handle: VmHandle, disk_id: str, dest: Path) -> str:
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            if self._running_pid(paths) is not None:
                raise InvalidState(f"VM {handle.vm_id} is running: stop it first to export a disk", field="vm_id")
            if disk_id not in {d.id for d in self._load_vm(paths)[0].spec.disks}:
                raise InvalidArgument("disk_id", f"VM {handle.vm_id} has no disk {disk_id!r}")
            await disks.export(self.qemu_img_path, paths.disk(disk_id), dest)
        return "qcow2"

    # ---------------------------------------------------------------- not offered by mvisor

    async def snapshot(self, handle: VmHandle, snapshot_id: str) -> None:
        raise UnsupportedFeature("snapshots", "mvisor has no runtime snapshot through a public interface")

    async def restore(self, handle: VmHandle, snapshot_id: str) -> None:
        raise UnsupportedFeature("snapshots", "mvisor has no runtime snapshot through a public interface")


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""

