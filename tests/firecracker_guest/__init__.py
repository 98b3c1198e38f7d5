"""The PVH test guest for Firecracker tests: its images as `LocalImage`s, VMs that boot it, the
backend the tests use (jailed, unprivileged uid, cgroup limits on), and the conformance profile.

The guest (src/plasmavmc/images/pvh_guest/guest.S) prints `PLASMAVMC-PVH-GUEST READY`, echoes serial
input and answers each line with `#<n> <line>` (n counts lines since boot, in guest memory), powers off
on "poweroff" or Ctrl-Alt-Del and halts on "halt". It has no shell and no disk driver: tests that need
those skip, saying so. It polls its UART, so a running one keeps a host CPU busy: tests end their VMs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
import uuid
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.base import LocalImage
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi
from plasmavmc.hypervisor.firecracker.backend import FirecrackerBackend
from plasmavmc.hypervisor.firecracker.jail import JailerOptions, cgroups_mounted
from plasmavmc.hypervisor.firecracker.pool import POOL_DIR
from plasmavmc.hypervisor.process import read_pidfile
from plasmavmc.images.pvh_guest.build import IMAGE_NAME, READY_LINE, build_seed
from plasmavmc.types.vm import DiskSource, DiskSpec, MemorySpec, VirtualMachine, VmSpec
from tests import binaries

SEED_DIR = Path(os.environ.get("PLASMAVMC_PVH_GUEST_DIR", "/var/cache/plasmavmc/pvh-guest"))
BINARIES = ("firecracker", "jailer", "as", "ld")  # `as`/`ld` build the PVH test guest
FIRECRACKER = binaries.path("firecracker")
JAILER = binaries.path("jailer")
JAIL_UID = 10123  # an unprivileged uid with no account: the jail makes everything it needs
READY = READY_LINE.encode()
READY_LINE_RE = re.escape(READY_LINE)
_images: dict[str, LocalImage] = {}


def missing() -> str | None:
    """Why Firecracker cannot run here (a binary or a capability), or None."""
    return binaries.missing(*BINARIES) or capability_missing()


def capability_missing() -> str | None:
    """Why this machine cannot run Firecracker although its binaries are installed (kept as skips)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not available"
    if not cgroups_mounted():
        return "no cgroup hierarchy is mounted (e.g. inside a chroot): the jailer cannot set limits here"
    return None


async def images() -> dict[str, LocalImage]:
    if not _images:
        m = await build_seed(SEED_DIR)
        _images[IMAGE_NAME] = LocalImage(
            image_id=IMAGE_NAME, disk_path=SEED_DIR / m.root_disk, disk_format=m.root_disk_format,
            kernel_path=SEED_DIR / m.kernel, initrd_path=SEED_DIR / m.initrd, kernel_cmdline=m.cmdline)
    return _images


def vm(name: str, hotplug: bool = False) -> VirtualMachine:
    disk = DiskSpec(id="root", source=DiskSource(image_id=IMAGE_NAME), size_gib=1)
    return VirtualMachine(id=str(uuid.uuid4()), name=name, org_id="org", project_id="proj",
                          spec=VmSpec(disks=(disk,), memory=MemorySpec(size_mib=64)))


def backend(runtime_dir: Path, *, jailed: bool = True, balloon: bool = False,
            diff_snapshots: bool = False, warm_pool: int = 0, guest_slice_us: int = 0) -> FirecrackerBackend:
    assert FIRECRACKER is not None and JAILER is not None
    options = JailerOptions(enabled=jailed, uid=JAIL_UID, gid=JAIL_UID)
    return FirecrackerBackend(FIRECRACKER, JAILER, runtime_dir, jailer=options, balloon=balloon,
                              diff_snapshots=diff_snapshots, warm_pool=warm_pool, guest_slice_us=guest_slice_us)


async def pool_ready(runtime_dir: Path, within_s: float = 30.0, entries: int = 1) -> set[int | None]:
    """The pids of an agent's waiting Firecrackers (its warm pool under `runtime_dir`), once `entries` of
    them answer on their API sockets (the pool's size: it is full, as on an idle node). The agent counts
    an entry ready when it answers the agent, which polls every millisecond; a CreateVm takes longer
    than that to reach the agent."""
    pool = runtime_dir / POOL_DIR
    async with asyncio.timeout(within_s):
        while True:
            answering = 0
            for sock in pool.glob("*/jail/*/*/root/api.sock"):
                with contextlib.suppress(HypervisorError):
                    await FirecrackerApi(sock, timeout=1.0).get("/")
                    answering += 1
            if answering >= entries:
                return {read_pidfile(p) for p in pool.glob("*/jail/*/*/root/*.pid")}
            await asyncio.sleep(0.01)  # poll-with-deadline: the pool fills in the background


def kill_leftovers(root: Path) -> None:
    """Hypervisor processes outlive the agent by design; a test's (or bench's) own ones end with it, and
    so do their jails' cgroups (which the VM's delete would have removed)."""
    jails: list[str] = []
    # an agent's VMs and pool (run/fc/...: `run` may be a link to a short path), or a backend's (run/...)
    pidfiles = [root.glob(f"{runtime}/{vm}/{where}") for runtime in ("run/fc", "run") for vm in ("*", ".pool/*")
                for where in ("jail/*/*/root/firecracker.pid", "vm/firecracker.pid")]
    for pidfile in {p for found in pidfiles for p in found}:
        pid = read_pidfile(pidfile)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if pidfile.parts[-5] == "jail":  # <vm>/jail/<exec>/<jail id>/root/firecracker.pid
            jails.append(pidfile.parts[-3])
    _remove_cgroups(jails)


def cgroup_mounts() -> list[tuple[Path, str, list[str]]]:
    """(mount point, fstype, options) of every cgroup hierarchy, read here from /proc/mounts (not
    through the backend's own reading, which the tests check)."""
    fields = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    return [(Path(f[1]), f[2], f[3].split(",")) for f in fields if len(f) > 3 and f[2] in ("cgroup", "cgroup2")]


def cgroup_dirs(parent: str, name: str) -> list[Path]:
    """The existing cgroup dirs `<hierarchy>/<parent>/<name>` (a jail's: one per v1 controller)."""
    return [mount / parent / name for mount, _, _ in cgroup_mounts() if (mount / parent / name).is_dir()]


def _remove_cgroups(jail_ids: list[str]) -> None:
    """The cgroup dirs of `jail_ids` (default parent), removed once the killed processes left them
    (poll-with-deadline: the kernel frees a cgroup a moment after its last task exits)."""
    dirs = [d for j in jail_ids for d in cgroup_dirs(JailerOptions().parent_cgroup, j)]
    deadline = time.monotonic() + 5.0
    for d in dirs:
        while d.is_dir():
            try:
                d.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
