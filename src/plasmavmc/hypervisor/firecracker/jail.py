"""Running Firecracker under its jailer (spec §11.3): argv, the chroot's contents, cgroups, cleanup.

The jailer (v1.12) makes `<chroot base>/<exec name>/<vm id>/root`, copies the Firecracker binary in,
creates /dev/kvm, /dev/net/tun, /dev/urandom and /dev/userfaultfd there owned by `--uid/--gid`, puts
the process into cgroups `<parent>/<vm id>` with the limits given as `--cgroup file=value`, and with
`--new-pid-ns` forks Firecracker as pid 1 of a new PID namespace, writes its host pid to
`<exec name>.pid` in the chroot and exits. Consequences handled here:

* The jailer refuses to start when its device nodes or binary copy already exist (`mknod: File
  exists`), so `reset_chroot` removes them (and the old pidfile and socket) before every launch while
  keeping our files (kernel, disks, logs, snapshots).
* Firecracker is pid 1 in its namespace, so it ignores SIGTERM: it is stopped by Ctrl-Alt-Del or SIGKILL.
* The cgroup directories outlive the process; `remove_cgroups` removes them on delete.
* A process of the warm pool (`pool.py`) is jailed before its VM is known: the jailer puts it into its
  cgroups with no limit (`open_limits`), and `apply_limits` writes the VM's into the same files when a
  VM takes it, before the guest's memory is allocated (so all of it is charged to the VM's cgroup).
  Where those files are is found once per process (the cgroup mounts are read once: the hierarchy does
  not move under a running agent), so a create pays one write per limit and no /proc/mounts parsing.
* The CPU quota is the VM's `vcpus` CPUs plus `vmm_cpu_percent` of one CPU for Firecracker's own
  threads (API, device emulation): each vCPU thread can use at most one CPU anyway, and without the
  allowance a guest that keeps its vCPU busy (as ours polls its UART) exhausts the period's quota and
  leaves the VMM's threads throttled until the next period, the boot's API answer among them.
* Files we put into the chroot are owned by the jail's uid/gid so an unprivileged Firecracker can use them.
* The jails' parent cgroup carries the VMs' CPU weight against the node's own processes (`weigh_parent`,
  `[hypervisors.firecracker] guest_cpu_weight`): a booted guest that keeps its vCPU busy shares a CPU
  with the agent, the server and the client of a create, whose work (the guest's first line on its way
  out, the create's answer) then comes first (same-minutes A/B of RunVm to the guest's line, six runs
  of 50: -0.7 ms on average, shares 128 against the default 1024).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.common import write_plain
from plasmavmc.hypervisor.firecracker.layout import API_SOCK, PIDFILE, FcPaths
from plasmavmc.types.vm import VmSpec

log = logging.getLogger(__name__)

CPU_PERIOD_US = 100_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class JailerOptions:
    """How VMs are jailed (agent config `[hypervisors.firecracker]`, see config/agent.py)."""

    enabled: bool = True
    uid: int = 0
    gid: int = 0
    cgroup_version: str = "auto"  # "auto" | "1" | "2"
    parent_cgroup: str = "plasmavmc"
    cgroup_limits: bool = True
    memory_overhead_mib: int = 64
    vmm_cpu_percent: int = 50  # of one CPU, on top of the vCPUs' quota, for Firecracker's own threads
    cpu_weight: int | None = None  # of `parent_cgroup` (v2 units), set by `weigh_parent`; None: left as it is


def detect_cgroup_version() -> str:
    """"2" when /sys/fs/cgroup is a cgroup2 mount (unified hierarchy), else "1"."""
    for fstype, mount in _cgroup_mounts():
        if fstype == "cgroup2" and mount == "/sys/fs/cgroup":
            return "2"
    return "1"


def _cgroup_mounts() -> list[tuple[str, str]]:
    return [(fstype, mount) for fstype, mount, _ in _cgroup_mounts_with_options()]


@functools.cache
def _cgroup_mounts_with_options() -> tuple[tuple[str, str, frozenset[str]], ...]:
    """(fstype, mount point, options) of every cgroup mount, read once per process (see above)."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ()
    return tuple((p[2], p[1], frozenset(p[3].split(","))) for p in (line.split() for line in lines)
                 if len(p) > 3 and p[2] in ("cgroup", "cgroup2"))


def cgroups_mounted() -> bool:
    return bool(_cgroup_mounts())


def cgroup_version(opts: JailerOptions) -> str:
    return detect_cgroup_version() if opts.cgroup_version == "auto" else opts.cgroup_version


def cgroup_limits(opts: JailerOptions, spec: VmSpec) -> list[str]:
    """`file=value` settings: CPU bandwidth of `vcpus` CPUs plus the VMM's allowance, memory of the guest
    plus overhead."""
    if not opts.cgroup_limits:
        return []
    if not cgroups_mounted():
        raise HypervisorError(
            "the jailer's cgroup limits need a mounted cgroup hierarchy and none is mounted under /sys/fs/cgroup; "
            "mount one, or set [hypervisors.firecracker] cgroup_limits = false"
        )
    quota = spec.cpu.vcpus * CPU_PERIOD_US + opts.vmm_cpu_percent * CPU_PERIOD_US // 100
    memory = (spec.memory.size_mib + opts.memory_overhead_mib) * MIB
    if cgroup_version(opts) == "2":
        return [f"cpu.max={quota} {CPU_PERIOD_US}", f"memory.max={memory}"]
    return [f"cpu.cfs_period_us={CPU_PERIOD_US}", f"cpu.cfs_quota_us={quota}", f"memory.limit_in_bytes={memory}"]


def open_limits(opts: JailerOptions) -> list[str]:
    """The same settings as `cgroup_limits`, unlimited: a pooled process's cgroups, made by the jailer
    before any VM is known, until `apply_limits` writes the VM's."""
    if not opts.cgroup_limits:
        return []
    if cgroup_version(opts) == "2":
        return [f"cpu.max=max {CPU_PERIOD_US}", "memory.max=max"]
    return [f"cpu.cfs_period_us={CPU_PERIOD_US}", "cpu.cfs_quota_us=-1", "memory.limit_in_bytes=-1"]


def apply_limits(jail_id: str, opts: JailerOptions, spec: VmSpec) -> None:
    """Write `spec`'s limits into the cgroup files of the jail `jail_id` (made by the jailer)."""
    version = cgroup_version(opts)
    for setting in cgroup_limits(opts, spec):
        name, _, value = setting.partition("=")
        path = _controller_dir(version, name.partition(".")[0]) / opts.parent_cgroup / jail_id / name
        try:
            write_plain(path, value.encode())
        except OSError as exc:
            raise HypervisorError(f"cannot set {name} of jail {jail_id}: {exc}") from exc


def weigh_parent(opts: JailerOptions) -> None:
    """`opts.cpu_weight` on the jails' parent cgroup (made if missing), so all the node's VMs together
    weigh that much against the node's own processes where they compete for a CPU (v2 `cpu.weight`, v1
    `cpu.shares`: weight x 1024 / 100). Where it cannot be written (no cpu controller there, a read-only
    hierarchy) the kernel's default stays, and that is logged: the VMs run all the same."""
    if opts.cpu_weight is None or not cgroups_mounted():
        return
    version = cgroup_version(opts)
    name, value = ("cpu.weight", opts.cpu_weight) if version == "2" else ("cpu.shares", opts.cpu_weight * 1024 // 100)
    try:
        parent = _controller_dir(version, "cpu") / opts.parent_cgroup
        parent.mkdir(exist_ok=True)
        write_plain(parent / name, str(value).encode())
    except (OSError, HypervisorError) as exc:
        log.warning("cannot set the CPU weight of the VMs' cgroup %s (the kernel's default stays): %s",
                    opts.parent_cgroup, exc)


def _controller_dir(version: str, controller: str) -> Path:
    """Where the hierarchy holding `controller` is mounted (v2: the unified one)."""
    for fstype, mount, options in _cgroup_mounts_with_options():
        if (fstype == "cgroup2" and version == "2") or (fstype == "cgroup" and controller in options):
            return Path(mount)
    raise HypervisorError(f"no cgroup v{version} hierarchy with the {controller} controller is mounted")


def jailer_argv(jailer: str, firecracker: str, paths: FcPaths, opts: JailerOptions,
                limits: list[str], fc_args: list[str]) -> list[str]:
    """The jailer's argv for the jail `paths.jail_id`, with cgroup `limits` (`cgroup_limits`/`open_limits`)."""
    argv = [jailer, "--id", paths.jail_id, "--exec-file", firecracker, "--uid", str(opts.uid),
            "--gid", str(opts.gid), "--chroot-base-dir", str(paths.jail_base), "--new-pid-ns",
            "--cgroup-version", cgroup_version(opts), "--parent-cgroup", opts.parent_cgroup]
    for setting in limits:
        argv += ["--cgroup", setting]
    return [*argv, "--", *fc_args]


def reset_chroot(paths: FcPaths, exec_name: str) -> None:
    """Remove what the jailer makes at each launch, keeping our files in the chroot."""
    root = paths.guest
    for name in ("dev", "run"):
        shutil.rmtree(root / name, ignore_errors=True)
    for name in (exec_name, PIDFILE, API_SOCK):
        (root / name).unlink(missing_ok=True)


def give_to_jail(paths: FcPaths, opts: JailerOptions, names: list[str]) -> None:
    """Make the chroot and the given files in it (those that exist) owned by the jail's uid/gid; what is
    the jail's already (a warm pool entry's chroot, log and metrics) is left as it is."""
    try:
        for path in [paths.guest, *(paths.guest / n for n in names)]:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if (st.st_uid, st.st_gid) != (opts.uid, opts.gid):
                os.chown(path, opts.uid, opts.gid)
    except OSError as exc:
        raise HypervisorError(f"cannot hand {paths.guest} to uid {opts.uid}: {exc}") from exc


async def remove_cgroups(jail_id: str, opts: JailerOptions, within_s: float = 5.0) -> None:
    """Remove the jail's cgroup directories once empty (the kernel may take a moment after the exit)."""
    version = cgroup_version(opts)
    for fstype, mount in _cgroup_mounts():
        if (fstype == "cgroup2") != (version == "2"):
            continue
        path = Path(mount) / opts.parent_cgroup / jail_id
        deadline = time.monotonic() + within_s
        while True:
            try:
                await asyncio.to_thread(os.rmdir, path)  # a cgroup's removal waits for the kernel (~8 ms)
                break
            except (FileNotFoundError, NotADirectoryError):
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise HypervisorError(f"cannot remove cgroup {path}: {exc}") from exc
                await asyncio.sleep(0.02)  # poll-with-deadline: its last task is still leaving


def link_or_copy(src: Path, dst: Path, *, allow_link: bool = True) -> None:
    """Put `src` at `dst` by hard link (same filesystem) or copy, atomically (a link straight to `dst`
    where nothing is there yet; else temp + rename).

    A hard link shares the inode, so it is only for files nobody changes or chowns (cached images).
    """
    if allow_link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # there already, or not linkable: as below
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            if not allow_link:
                raise OSError("copy requested")
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HypervisorError(f"cannot place {src} at {dst}: {exc}") from exc
