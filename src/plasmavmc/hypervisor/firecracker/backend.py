"""`FirecrackerBackend`: the VM lifecycle on one node with Firecracker microVMs, jailed or not.

What it owns: each VM's runtime dir (`layout.py`, its files from the images: `vmfiles.py`), its
Firecracker process (`launcher.py`, `launch.py`, optionally under the jailer, `jail.py`), configured at
exec from a `--config-file` (`spec.vm_config`: the boot is one exec, no API round trip) or, taken from
the warm pool (`pool.py`), over its API (`api_boot.py`), and driven afterwards over the HTTP API
(`api.py`), and its raw disks (`disks.py`); pause and snapshots are its `FcSnapshots` half
(`snapshotting.py`). Like the QEMU backend it keeps nothing in memory that matters: every method works
from files, so a second instance on the same runtime dir — an agent after a restart — finds and drives
the running VMs (`handles()`).

Choices, visible to callers:
* `stop` sends Ctrl-Alt-Del (Firecracker's only soft power-off; the guest answers with an i8042 reset,
  which ends the process) and kills after the timeout.
* Firecracker cannot reboot in place: `reboot` is a graceful stop, `reset` a kill, then a fresh start.
* No hot-plug (devices are fixed at InstanceStart): the attach/detach methods raise UnsupportedFeature.
* A paused VM (only ever transiently, during `snapshot`) reports RUNNING with a `Paused` condition.
* With `balloon`, every VM gets a virtio-balloon (target 0, deflate on OOM); `set_balloon` moves it.
* With `diff_snapshots`, dirty pages are tracked and every snapshot after the first of a run is a Diff
  (memory written since the previous one); restore merges the chain (`diffs.py`).
* Whether a VM is jailed is decided at `create` and stored in its handle (later option changes keep it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from plasmavmc.config.agent import AgentSettings
from plasmavmc.errors import HypervisorError, InvalidArgument, InvalidState, NotFound
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
from plasmavmc.hypervisor.common import (
    after_first_output,
    flush_all,
    image_for_boot,
    mark_stop,
    vm_name,
    write_atomic,
)
from plasmavmc.hypervisor.console import bound_log
from plasmavmc.hypervisor.firecracker import (
    api_boot,
    clones,
    handles,
    jail,
    launch,
    launcher,
    pool,
    spec,
    usage,
    vmfiles,
)
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi
from plasmavmc.hypervisor.firecracker.console import FifoConsole
from plasmavmc.hypervisor.firecracker.disks import sparse_copy
from plasmavmc.hypervisor.firecracker.jail import JailerOptions
from plasmavmc.hypervisor.firecracker.layout import FcPaths
from plasmavmc.hypervisor.firecracker.snapshotting import FcSnapshots
from plasmavmc.hypervisor.process import Process, tail
from plasmavmc.hypervisor.provisional import Commitment, committed
from plasmavmc.hypervisor.vmdir import HANDLE
from plasmavmc.observe.steps import Steps
from plasmavmc.types.codec import dumps, loads
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    Condition,
    ConsoleType,
    DiskBus,
    HypervisorType,
    NicModel,
    VirtualMachine,
    VmSpec,
    VmStatus,
)

REBOOT_STOP_TIMEOUT_S = 30.0
POOLED_STEPS = "pooled backend steps"  # its log line, one per VM (`steps.Steps`; the bench reads it)
log = logging.getLogger(__name__)


class FirecrackerBackend(FixedDevices, FcSnapshots):
    fixed_devices_reason = "firecracker devices are fixed when the VM starts"

    def __init__(self, fc_path: str, jailer_path: str, runtime_dir: Path, *,
                 jailer: JailerOptions | None = None, qemu_img_path: str = "qemu-img",
                 balloon: bool = False, diff_snapshots: bool = False, warm_pool: int = 0,
                 guest_slice_us: int = 0) -> None:
        self.fc_path = shutil.which(fc_path) or fc_path
        self.jailer_path = shutil.which(jailer_path) or jailer_path
        super().__init__(runtime_dir)
        self.jailer = jailer or JailerOptions(enabled=False)
        self.qemu_img_path = qemu_img_path
        self.balloon = balloon  # give every VM a virtio-balloon (target 0 MiB) to reclaim memory later
        self.diff_snapshots = diff_snapshots  # dirty-page tracking on: later snapshots of a run are Diffs
        self.exec_name = Path(self.fc_path).name
        self._cpu = usage.CpuMeter()
        self.launcher = launcher.Launcher(self.fc_path, self.jailer_path, self.jailer, self.exec_name,
                                          guest_slice_us * 1000)
        self.pool = pool.WarmPool(self.runtime_dir, warm_pool, jailed=self.jailer.enabled, exec_name=self.exec_name,
                                  spawn=self.launcher.spawn_warm, discard=self.launcher.discard_warm,
                                  prepare=functools.partial(vmfiles.make_ahead, jailer=self.jailer,
                                                            qemu_img=self.qemu_img_path))

    # ---------------------------------------------------------------- declarations

    def backend_type(self) -> HypervisorType:
        return HypervisorType.FIRECRACKER

    def capabilities(self) -> BackendCapabilities:
        host_memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30
        return BackendCapabilities(
            serial_console=True, graceful_stop=True, snapshots=True, disk_export=True,
            max_vcpus=min(spec.MAX_VCPUS, os.cpu_count() or 1), max_memory_gib=max(host_memory_gib, 1),
            supported_disk_buses=(DiskBus.VIRTIO,), supported_nic_models=(NicModel.VIRTIO_NET,),
            accelerator="kvm",
        )

    def supports(self, vm_spec: VmSpec) -> None:
        spec.check(vm_spec, None)

    async def open(self) -> None:
        """The VMs' CPU weight on their parent cgroup (`jail.weigh_parent`), then the warm pool: what an
        earlier agent left is killed, then it fills in the background."""
        if self.jailer.enabled:
            jail.weigh_parent(self.jailer)
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    # ---------------------------------------------------------------- helpers

    def paths(self, handle: VmHandle) -> FcPaths:
        return handles.paths_of(self.runtime_dir, handle, self.exec_name)

    def _paths(self, handle: VmHandle) -> FcPaths:
        return self.paths(handle)

    def _process(self, paths: FcPaths) -> Process | None:
        return launch.running(paths, paths.jail_id)

    # ---------------------------------------------------------------- create

    async def create(self, vm: VirtualMachine, images: Mapping[str, LocalImage]) -> VmHandle:
        boot, used = self._checked(vm, images)
        handle, paths = self._begin_dir(vm, None)  # adoptable from here on
        await self._place_files(vm, boot, used, paths)
        crashpoints.reached("create:disks")
        self._save_vm(paths, vm, used)
        return handle

    async def create_started(self, vm: VirtualMachine, images: Mapping[str, LocalImage],
                             ready: Callable[[VmHandle], None] | None = None, *,
                             output_sent: asyncio.Event | None = None,
                             commitment: Commitment | None = None) -> tuple[VmHandle, float]:
        """With a process of the warm pool (`pool.py`): `_warm_started`; its console can be followed from
        the moment the entry is the VM's (`ready`). Without, a clone's Firecracker is launched while its
        files are placed (it reads none before its snapshot is loaded); anything else (or a create
        resent): create, then start. A provisional create (`commitment`) boots ahead of its word only
        from the pool; the other ways wait for it first."""
        if (self.vm_dir(vm.id) / HANDLE).exists():
            return await super().create_started(vm, images, ready, commitment=commitment)
        boot, used = self._checked(vm, images)
        warm = self.pool.take()
        if warm is not None:
            try:
                return await self._warm_started(vm, boot, used, warm, ready, output_sent, commitment)
            finally:
                self.pool.refill()
        await committed(commitment)
        if vm.source_snapshot is None:
            return await super().create_started(vm, images, ready)
        handle, paths = self._begin_dir(vm, None)
        async with self._lock(vm.id):
            launching = asyncio.create_task(self.launcher.launch(paths, vm))
            try:
                await self._place_files(vm, boot, used, paths)
                crashpoints.reached("create:disks")
                self._save_vm(paths, vm, used)
            except BaseException:
                with contextlib.suppress(Exception):
                    process, _ = await launching
                    await launcher.abort(paths, process, "create failed")
                raise
            made_at = time.time()
            process, api = await launching
            await self._resume_clone(paths, process, api)
        if ready is not None:
            ready(handle)
        return handle, made_at

    async def _warm_started(self, vm: VirtualMachine, boot: LocalImage, used: dict[str, LocalImage],
                            warm: pool.Warm, ready: Callable[[VmHandle], None] | None,
                            output_sent: asyncio.Event | None,
                            commitment: Commitment | None) -> tuple[VmHandle, float]:
        """The VM made in `warm`'s jail (its files kept where the entry made them ahead) and booted (or
        resumed) over its API: no jailer, no exec. What the boot reads is written without fsync; once
        the guest's first output has gone on (`output_sent`, at most `common.FIRST_OUTPUT_WAIT`), its
        records are written in a thread and everything is flushed at once (`flush_all`): the create
        answers with everything durable. Not beside the boot nor the first output: the flush's threads
        and journal commits took the CPU they need (A/B: 1.0-3.0 ms sooner to the guest's line).
        A provisional create (`commitment`) boots at once, its handle marked provisional; once its first
        output went on it waits for the word, then its handle loses the mark (rewritten with its
        records). Abandoned, it writes no record and its process is killed (`NodeVms` removes the rest)."""
        took = Steps()
        with warm.process:
            handle, paths = self._begin_dir(vm, warm, durable=False, provisional=commitment is not None)
            took.done("dir")
            if ready is not None:
                ready(handle)
            async with self._lock(vm.id):
                try:
                    await self._place_files(vm, boot, used, paths, durable=False, made=warm.files)
                    crashpoints.reached("create:disks")
                    took.done("files")
                    made_at = time.time()
                    try:
                        await self._boot_warm(vm, boot, paths, warm.process, took)
                        await after_first_output(output_sent)
                        took.done("output")
                        if commitment is not None:
                            await commitment.wait()
                            handle = handles.unmarked(handle)
                    finally:  # written and flushed whether the boot failed or not (unless abandoned)
                        if commitment is None or commitment.confirmed:
                            await self._save_flushed(paths, vm, used, handle if commitment is not None else None)
                            took.done("flush")
                except BaseException:
                    with contextlib.suppress(Exception):
                        await launcher.abort(paths, warm.process, "create failed")
                    raise
                launcher.record_started(paths, warm.process, 0, 0)
                took.done("recorded")
        log.info("%s", took.line(f"vm {vm.id}: {POOLED_STEPS}"))
        return handle, made_at

    async def _save_flushed(self, paths: FcPaths, vm: VirtualMachine, used: dict[str, LocalImage],
                            handle: VmHandle | None = None) -> None:
        """The VM's records (and `handle`, where given, over the one written) written, then everything
        of the create flushed at once: one worker thread for all (`flush_all`), so the event loop hears
        back once."""
        def save_flush() -> None:
            if handle is not None:
                write_atomic(paths.root / HANDLE, dumps(handle), durable=False)
            self._save_vm(paths, vm, used, durable=False)
            flush_all(vmfiles.durable_files(paths, vm))

        await asyncio.to_thread(save_flush)

    async def _boot_warm(self, vm: VirtualMachine, boot: LocalImage, paths: FcPaths, process: Process,
                         took: Steps) -> None:
        """The VM's limits on the pooled process's cgroups, then its boot (or a clone's resume) over the API
        (the process is at the agent's CPU priority since it waits: `launcher.spawn_warm`)."""
        if paths.jailed:
            jail.apply_limits(paths.jail_id, self.jailer, vm.spec)
        took.done("limits")
        api = FirecrackerApi(paths.api_sock)
        if vm.source_snapshot is not None:
            await self._resume_clone(paths, process, api)
            took.done("resume")
        else:
            await api_boot.boot(api, spec.vm_config(vm, boot, track_dirty_pages=self.diff_snapshots,
                                                    with_balloon=self.balloon))
            took.done("boot")

    def _checked(self, vm: VirtualMachine, images: Mapping[str, LocalImage]
                 ) -> tuple[LocalImage, dict[str, LocalImage]]:
        """Everything about a create checked before anything is made: (boot image, images by id)."""
        self.supports(vm.spec)
        vm_name(vm.name)
        used: dict[str, LocalImage] = {}
        for i, disk in enumerate(vm.spec.disks):
            image = images.get(disk.source.image_id or "")
            if image is None:
                raise InvalidArgument(f"spec.disks[{i}].source", f"image {disk.source.image_id!r} not provided")
            used[image.image_id] = image
        boot = spec.check_kernel(image_for_boot(vm.spec, used))
        spec.boot_args(vm, boot)
        if vm.source_snapshot is not None:
            clones.check_clone(vm)
            clones.check_source(self._paths_of(vm.source_snapshot.vm_id), vm.source_snapshot.snapshot_id)
        return boot, used

    def _begin_dir(self, vm: VirtualMachine, warm: pool.Warm | None, *, durable: bool = True,
                   provisional: bool = False) -> tuple[VmHandle, FcPaths]:
        """The VM's directory with its handle (marked `provisional`: `provisional.py`), then its guest
        dir: made, or `warm`'s entry moved in whole."""
        jail_id = warm.jail_id if warm is not None else vm.id
        paths = FcPaths.of(self.runtime_dir, vm.id, jailed=self.jailer.enabled, exec_name=self.exec_name,
                           jail_id=jail_id)
        handle = handles.new(vm, paths, self.exec_name, provisional=provisional)
        try:
            if warm is not None:  # the entry, its handle written inside, renamed into place (not fsynced)
                pool.move_into(warm, paths, dumps(handle))
                crashpoints.reached("create:handle")
            else:
                self._begin(handle, durable=durable)
                paths.guest.mkdir(parents=True, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise HypervisorError(f"cannot create runtime dir {paths.guest}: {exc}") from exc
        return handle, paths

    async def _place_files(self, vm: VirtualMachine, boot: LocalImage, used: Mapping[str, LocalImage],
                           paths: FcPaths, *, durable: bool = True, made: vmfiles.BootFiles | None = None) -> None:
        """The VM's files in its guest dir, the jail's where it writes them (log and metrics: made at its
        launch). `made`: what a pool entry made there ahead, kept if the VM needs it, else removed first."""
        if vm.source_snapshot is not None:  # a clone: the snapshot's files, linked (clones.py)
            if made is not None:
                vmfiles.remove_boot_files(made, paths)
            source = self._paths_of(vm.source_snapshot.vm_id)
            await clones.place(source, vm.source_snapshot.snapshot_id, paths, [d.id for d in vm.spec.disks],
                               durable=durable)
        else:
            files = self.pool.expect = vmfiles.BootFiles.of(vm, boot, used)  # the next pool entries' too
            if made == files:
                return  # made and given to the jail ahead (`vmfiles.make_ahead`)
            if made is not None:
                vmfiles.remove_boot_files(made, paths)
            await vmfiles.place_boot_files(files, paths, jailer=self.jailer, qemu_img=self.qemu_img_path,
                                           durable=durable)
        if paths.jailed:
            jail.give_to_jail(paths, self.jailer, launcher.jail_files(vm))

    def _paths_of(self, vm_id: str) -> FcPaths:
        """The layout of another VM of this node (a clone's source), from its handle."""
        try:
            handle = loads(VmHandle, (self.vm_dir(vm_id) / HANDLE).read_bytes())
        except (OSError, ValueError) as exc:
            raise NotFound(f"VM {vm_id} is not on this node", field="source_snapshot.vm_id") from exc
        return self.paths(handle)

    # ---------------------------------------------------------------- start / stop

    async def start(self, handle: VmHandle) -> None:
        paths = self.paths(handle)
        async with self._lock(handle.vm_id):
            pid = self._running_pid(paths)
            if pid is not None:
                raise InvalidState(f"VM {handle.vm_id} is already running (pid {pid})")
            vm, images = self._load_vm(paths)
            boot = spec.check_kernel(image_for_boot(vm.spec, images))
            cloned = clones.pending(paths)  # a clone's first start resumes its source snapshot (clones.py)
            config = None if cloned else spec.vm_config(vm, boot, track_dirty_pages=self.diff_snapshots,
                                                        with_balloon=self.balloon)
            process, api = await self.launcher.launch(paths, vm, config)
            if cloned:
                await self._resume_clone(paths, process, api)
            process.close()

    async def _resume_clone(self, paths: FcPaths, process: Process, api: FirecrackerApi) -> None:
        """A clone's first start: its source snapshot loaded and resumed in the fresh `process`."""
        try:
            await clones.load(api, paths)
        except HypervisorError as exc:
            await launcher.abort(paths, process, "start failed")
            raise HypervisorError(f"{exc.message}; firecracker log: {tail(paths.log, 600)}") from exc
        clones.done(paths)

    async def _stop(self, paths: FcPaths, grace_s: float, reason: str) -> None:
        process = self._process(paths)
        if process is None:
            return  # already stopped: stop is idempotent
        with process:
            mark_stop(paths.stop_marker, process.pid, reason)
            with contextlib.suppress(HypervisorError):  # API gone or busy: the deadline still holds
                await FirecrackerApi(paths.api_sock, timeout=min(grace_s, 5.0) or 1.0).action("SendCtrlAltDel")
            await process.wait_or_kill(grace_s, f"firecracker of vm {paths.root.name}")

    async def _kill(self, paths: FcPaths, reason: str) -> None:
        process = self._process(paths)
        if process is not None:
            await launcher.abort(paths, process, reason)

    async def reboot(self, handle: VmHandle) -> None:
        """A cold reboot: Ctrl-Alt-Del (killed after REBOOT_STOP_TIMEOUT_S), then a fresh start."""
        await self._restart(handle, REBOOT_STOP_TIMEOUT_S, "reboot")

    async def reset(self, handle: VmHandle) -> None:
        """A hard reset: kill, then a fresh start (Firecracker cannot reset a running VM)."""
        await self._restart(handle, 0.0, "reset")

    async def _end_for_delete(self, handle: VmHandle) -> None:
        paths = self.paths(handle)
        await self._kill(paths, "delete")
        if paths.jailed:
            await jail.remove_cgroups(self.paths(handle).jail_id, self.jailer)

    def _forget(self, vm_id: str) -> None:
        self._cpu.forget(vm_id)

    # ---------------------------------------------------------------- observation

    async def status(self, handle: VmHandle) -> VmStatus:
        paths = self.paths(handle)
        pid = self._running_pid(paths)
        if pid is None:
            return VmStatus(actual_state=VmState.STOPPED, accelerator="kvm")
        bound_log(paths.console_log)
        started = self._started(paths)
        vm = self._vm_or_none(paths)
        guest_mib = vm.spec.memory.size_mib if vm is not None else 0
        state, error = VmState.RUNNING, None
        conditions: tuple[Condition, ...] = ()
        api = FirecrackerApi(paths.api_sock, timeout=5.0)
        try:
            info = await api.get("/")
            if info.get("state") == "Paused":
                conditions = (Condition(type="Paused", status=True, reason="Paused",
                                        message="vCPUs paused (snapshot in progress)",
                                        last_transition_at=int(time.time())),)
            elif info.get("state") != "Running":
                state = VmState.STARTING
        except HypervisorError as exc:
            error = f"firecracker API unavailable: {exc.message}"
        return VmStatus(actual_state=state, host_pid=pid, last_error=error, conditions=conditions,
                        started_at=int(started["started_at"]) if "started_at" in started else None,
                        accelerator="kvm", resource_usage=await usage.sample(
                            api, paths.metrics, int(started.get("metrics_offset", "0")), self._cpu,
                            handle.vm_id, pid, guest_mib))

    async def status_after_start(self, handle: VmHandle) -> VmStatus:
        """Without asking Firecracker: `start` returned once its API answered after the boot (or the
        snapshot's resume), so it runs; usage (a FlushMetrics round trip) comes with the next `status`."""
        paths = self.paths(handle)
        pid = self._running_pid(paths)
        started = self._started(paths)
        if pid is None or "started_at" not in started:
            return await self.status(handle)
        return VmStatus(actual_state=VmState.RUNNING, host_pid=pid, started_at=int(started["started_at"]),
                        accelerator="kvm")

    async def wait_exit(self, handle: VmHandle) -> ExitReport:
        paths = self.paths(handle)
        started = self._started(paths)
        process = launch.running(paths, paths.jail_id)
        if process is None:
            pid = started.get("pid")
            return launch.classify(paths, int(pid) if pid else None, int(started.get("log_offset", "0")))
        with process:
            await process.wait()
        started = self._started(paths)  # a restore may have replaced the run we waited for
        return launch.classify(paths, process.pid, int(started.get("log_offset", "0"))
                               if started.get("pid") == str(process.pid) else 0)

    async def console(self, handle: VmHandle, console_type: ConsoleType) -> ConsoleStream:
        if console_type is not ConsoleType.SERIAL:
            raise UnsupportedFeature("vnc_console", "firecracker has a serial console only", field="console_type")
        paths = self.paths(handle)
        if not paths.root.is_dir():
            raise InvalidState(f"VM {handle.vm_id} has no runtime dir on this node")
        return FifoConsole(paths.console_log, paths.console_in, alive=lambda: self._running_pid(paths) is not None)

    async def export_disk(self, handle: VmHandle, disk_id: str, dest: Path) -> str:
        """A disk is a raw file of its own: a sparse copy of it is the standalone image."""
        paths = self.paths(handle)
        async with self._lock(handle.vm_id):  # no start while the copy is made
            if self._running_pid(paths) is not None:
                raise InvalidState(f"VM {handle.vm_id} is running: stop it first to export a disk", field="vm_id")
            vm, _ = self._load_vm(paths)
            if disk_id not in {d.id for d in vm.spec.disks}:
                raise InvalidArgument("disk_id", f"VM {handle.vm_id} has no disk {disk_id!r}")
            await asyncio.to_thread(sparse_copy, paths.disk(disk_id), dest)
        return "raw"

    async def set_balloon(self, handle: VmHandle, target_mib: int) -> None:
        """Ask the guest's balloon driver to give back memory down to `target_mib` inflated MiB."""
        paths = self.paths(handle)
        if not self.balloon:
            raise UnsupportedFeature("balloon", "the balloon is not configured on this node")
        api = await self._api_of_running(paths, "balloon")
        await api.patch("/balloon", {"amount_mib": spec.balloon_target(target_mib)})


def backend_from_settings(settings: AgentSettings) -> FirecrackerBackend:
    """The backend `[hypervisors.firecracker]` describes (qemu-img from `[hypervisors.kvm]`)."""
    fc = settings.hypervisors.firecracker
    options = JailerOptions(enabled=fc.jailer, uid=fc.jailer_uid, gid=fc.jailer_gid,
                            cgroup_version=fc.cgroup_version, parent_cgroup=fc.parent_cgroup,
                            cgroup_limits=fc.cgroup_limits, memory_overhead_mib=fc.memory_overhead_mib,
                            vmm_cpu_percent=fc.vmm_cpu_percent, cpu_weight=fc.guest_cpu_weight)
    return FirecrackerBackend(fc.fc_path, fc.jailer_path, Path(fc.runtime_dir), jailer=options,
                              qemu_img_path=settings.hypervisors.kvm.qemu_img_path, balloon=fc.balloon,
                              diff_snapshots=fc.diff_snapshots, warm_pool=fc.warm_pool,
                              guest_slice_us=fc.guest_slice_us)
