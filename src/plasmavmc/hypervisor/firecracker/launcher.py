"""`Launcher`: how this node starts a Firecracker for a VM's directory (or a warm-pool entry's) and ends
one it gave up on.

A launch writes Firecracker's flags (with a `--config-file` when the VM is to boot at exec), runs it
directly or through the jailer (chroot reset, files handed to the jail's uid, cgroup limits), waits until
its API answers, and records the run (`started.json`: pid, time, log offsets). A warm-pool entry is the
same launch with no configuration, cgroups with no limit yet and at the lowest CPU priority (`pool.py`).
`abort` kills a process whose start failed, recording why (an intended exit, never reported as a crash).
The launcher keeps only its options and how long the latest launch took to answer.
"""

from __future__ import annotations

import json
import time
from typing import Any

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor import crashpoints
from plasmavmc.hypervisor.common import mark_stop, write_atomic
from plasmavmc.hypervisor.console import bound_log
from plasmavmc.hypervisor.firecracker import clones, jail, launch
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi, wait_for_socket
from plasmavmc.hypervisor.firecracker.jail import JailerOptions
from plasmavmc.hypervisor.firecracker.layout import API_SOCK, CONFIG, LOG, METRICS, FcPaths, disk_file
from plasmavmc.hypervisor.process import Process, tail
from plasmavmc.types.vm import VirtualMachine

API_READY_S = 10.0


def jail_files(vm: VirtualMachine) -> list[str]:
    """What the jail's uid must own (it writes them); the kernel and initrd are only read."""
    return [LOG, METRICS, CONFIG, "snapshots", clones.SOURCE_DIR, *(disk_file(d.id) for d in vm.spec.disks)]


def record_started(paths: FcPaths, process: Process, log_offset: int, metrics_offset: int) -> None:
    # not fsynced: it names this run's process, which a host crash ends anyway
    write_atomic(paths.started, json.dumps({"pid": str(process.pid), "started_at": str(int(time.time())),
                                            "log_offset": str(log_offset),
                                            "metrics_offset": str(metrics_offset)}).encode(), durable=False)


async def abort(paths: FcPaths, process: Process, reason: str) -> None:
    """Kill `process` (the caller's, closed here), recording `reason` as the run's requested end."""
    with process:
        mark_stop(paths.stop_marker, process.pid, reason)
        await process.kill()


class Launcher:
    def __init__(self, fc_path: str, jailer_path: str, jailer: JailerOptions, exec_name: str,
                 guest_slice_ns: int = 0) -> None:
        self.fc_path = fc_path
        self.jailer_path = jailer_path
        self.jailer = jailer
        self.exec_name = exec_name
        self.guest_slice_ns = guest_slice_ns  # the vCPU threads' scheduler slice (0: the kernel's)
        self.last_api_ready_s: float | None = None  # exec → API socket ready, of the latest launch

    def fc_args(self, paths: FcPaths, config: dict[str, Any] | None) -> list[str]:
        """Firecracker's own flags (a jailed one sees the chroot as /); with `config` (`spec.vm_config`) it
        is written and given at exec (`--config-file`): Firecracker configures and starts the VM before
        its API answers, with no round trip of ours. Without, it waits unconfigured."""
        root = "/" if paths.jailed else ""
        fc_args = ["--api-sock", root + API_SOCK, "--log-path", root + LOG, "--level", "Info",
                   "--metrics-path", root + METRICS]
        if config is not None:
            write_atomic(paths.config, json.dumps(config).encode(), durable=False)  # rewritten at every boot
            fc_args += ["--config-file", root + CONFIG]
        return fc_args

    async def launch(self, paths: FcPaths, vm: VirtualMachine,
                     config: dict[str, Any] | None = None) -> tuple[Process, FirecrackerApi]:
        """A fresh Firecracker for this VM, its API answering (`fc_args` for `config`), its run recorded."""
        fc_args = self.fc_args(paths, config)
        limits = jail.cgroup_limits(self.jailer, vm.spec) if paths.jailed else []
        log_offset = paths.log.stat().st_size if paths.log.exists() else 0
        metrics_offset = paths.metrics.stat().st_size if paths.metrics.exists() else 0
        process, api = await self.exec(paths, fc_args, limits, jail_files(vm))
        record_started(paths, process, log_offset, metrics_offset)
        return process, api

    async def exec(self, paths: FcPaths, fc_args: list[str], limits: list[str],
                   files: list[str], *, low_priority: bool = False) -> tuple[Process, FirecrackerApi]:
        """Exec Firecracker (through the jailer when jailed, with cgroup `limits`, `files` handed to the
        jail's uid) until its API answers, then at the agent's nice (`launch.set_guest_priority`), its
        VMM thread and the vCPUs it makes (those of a VM booted from its config file made already) at the
        guests' slice (`launch.set_vcpu_slice`);
        `low_priority`: at the lowest CPU priority until the API answers (`launch.set_low_priority`).
        Its log and metrics files, which it opens at exec, are made here where missing."""
        for name in (LOG, METRICS):
            (paths.guest / name).touch(mode=0o600)
        if paths.jailed:
            jail.reset_chroot(paths, self.exec_name)
            jail.give_to_jail(paths, self.jailer, files)
            argv = jail.jailer_argv(self.jailer_path, self.fc_path, paths, self.jailer, limits, fc_args)
        else:
            paths.api_sock.unlink(missing_ok=True)
            argv = [self.fc_path, "--id", paths.jail_id, *fc_args]
        bound_log(paths.console_log)
        launched_at = time.monotonic()
        await launch.launch(argv, paths, jailed=paths.jailed, low_priority=low_priority)
        process = launch.running(paths, paths.jail_id)
        if process is None:
            raise HypervisorError(f"firecracker exited at once: {tail(paths.launch_log)}")
        crashpoints.reached("start:spawned")
        api = FirecrackerApi(paths.api_sock)
        try:
            await wait_for_socket(api, process.alive, API_READY_S)
            self.last_api_ready_s = time.monotonic() - launched_at
            launch.set_guest_priority(process.pid)
            launch.set_vcpu_slice(process.pid, self.guest_slice_ns)
        except HypervisorError as exc:
            await abort(paths, process, "start failed")
            raise HypervisorError(f"{exc.message}; firecracker log: {tail(paths.log, 600)}") from exc
        return process, api

    async def spawn_warm(self, paths: FcPaths) -> Process:
        """A pool entry (`pool.py`): an unconfigured Firecracker in its own jail, cgroups unlimited,
        launched at the lowest CPU priority (`launch.set_low_priority`) and set back to the agent's once
        its API answers (`exec`), to wait idle (no CPU) for a VM. Not set back at the VM's boot: a process
        whose threads went from nice 19 to the agent's just before its boot booted 2-4 ms slower than raw
        Firecracker; set back while it waits, it boots as fast (the pooled backend's PUTs + InstanceStart,
        jailed, interleaved with raw Firecracker's boots: 12.0-13.2 ms against raw's 8.9-10.1 before,
        9.0-10.0 against 9.1-9.2 since)."""
        paths.guest.mkdir(parents=True, mode=0o700, exist_ok=True)
        limits = jail.open_limits(self.jailer) if paths.jailed else []
        process, _ = await self.exec(paths, self.fc_args(paths, None), limits, [LOG, METRICS], low_priority=True)
        return process

    async def discard_warm(self, paths: FcPaths) -> None:
        """Kill a pool entry's process (if it runs) and remove its cgroups."""
        process = launch.running(paths, paths.jail_id)
        if process is not None:
            with process:
                await process.kill()
        if paths.jailed:
            await jail.remove_cgroups(paths.jail_id, self.jailer)
