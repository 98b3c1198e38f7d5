"""The warm pool: Firecracker processes already launched (jailed: chroot, device nodes, cgroups, PID
namespace), unconfigured and waiting on their API socket, for a create with `start` or a clone to take.

The jailer and the exec are the largest part of a Firecracker start; with a process from the pool they
leave the critical path: the VM's files are placed in the process's jail and it is configured over its
API (`api_boot.py`) or loads a snapshot. The pool refills itself in the background.

Layout: entry `<id>` lives in `<runtime_dir>/.pool/<id>/` with the same layout as a VM's dir (`FcPaths`
with vm id = jail id = `<id>`, a random UUID that is its `--id`, its jail's and its cgroup's name). It has
no `handle.json` at the top of the runtime dir, so adoption (`handles()`) never sees it. `take` hands an
entry to a VM and `move_into` writes the VM's handle into the entry and renames the whole entry to the
VM's dir (one rename: the same layout, with the entry's id as jail id): Firecracker keeps its files open
or chrooted, so the rename is invisible to it; the VM's handle records the jail id from then on.

An entry has the files of the last create from images made ahead too (`expect`, `vmfiles.BootFiles`:
its kernel, initrd and disks, from the same cached files), once its process waits: a create that wants
the same keeps them (most creates of a node use the images the last one did), another replaces them.
Made without fsync, as a create's own are before its flush.

A pool's launches run at nice 19 (`launch.set_low_priority`): the refill after a create, a jailer and
an exec, yields the CPU to the create's answer, the next create and running guests; the process a VM
takes is set back to the agent's own nice before its boot.

The pool is invisible to the rest of the node: its processes are no VMs (no capacity, no reports), an
agent start kills whatever a previous agent left in `.pool/` (`purge_stale`, before filling), and
`close` (agent stop) kills every entry and removes its jail and cgroups: no orphans either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from plasmavmc.errors import PlasmaError
from plasmavmc.hypervisor.common import write_plain
from plasmavmc.hypervisor.firecracker.layout import FcPaths
from plasmavmc.hypervisor.firecracker.vmfiles import BootFiles, remove_boot_files
from plasmavmc.hypervisor.process import Process
from plasmavmc.hypervisor.vmdir import HANDLE

log = logging.getLogger(__name__)
POOL_DIR = ".pool"
RETRY_S = 5.0  # after a failed launch, the pool waits this long before the next, doubling up to RETRY_MAX_S
RETRY_MAX_S = 300.0
REFILL_AFTER_S = 0.1  # a refill starts this long after a take: the create's answer goes out first


@dataclass
class Warm:
    """One waiting process: its pool-side layout, its (open) process and the files made in its guest dir."""

    paths: FcPaths
    process: Process
    files: BootFiles | None = None

    @property
    def jail_id(self) -> str:
        return self.paths.jail_id


Spawn = Callable[[FcPaths], Awaitable[Process]]  # launches an unconfigured Firecracker at these paths
Discard = Callable[[FcPaths], Awaitable[None]]  # kills what runs there and removes its cgroups
Prepare = Callable[[FcPaths, BootFiles], Awaitable[None]]  # makes these files in that guest dir, the jail's


class WarmPool:
    """Keeps `size` processes waiting (0: no pool). `spawn`, `discard` and `prepare` are the backend's;
    `expect` the files the next entries get made (the backend's last create from images)."""

    def __init__(self, runtime_dir: Path, size: int, *, jailed: bool, exec_name: str,
                 spawn: Spawn, discard: Discard, prepare: Prepare | None = None) -> None:
        self.dir = runtime_dir.absolute() / POOL_DIR
        self.size = size
        self.jailed = jailed
        self.exec_name = exec_name
        self._spawn = spawn
        self._discard = discard
        self._prepare = prepare
        self.expect: BootFiles | None = None
        self._ready: list[Warm] = []
        self._wake = asyncio.Event()
        self._filler: asyncio.Task[None] | None = None
        self._closing = False
        self.launched = 0  # processes launched since open (tests and benches read it)

    def paths_of(self, entry_id: str) -> FcPaths:
        return FcPaths.of(self.dir, entry_id, jailed=self.jailed, exec_name=self.exec_name)

    def ready(self) -> list[Warm]:
        return list(self._ready)

    async def open(self) -> None:
        """Kill what an earlier agent left, then fill in the background."""
        await self.purge_stale()
        if self.size > 0 and self._filler is None:
            self._filler = asyncio.create_task(self._fill_forever())

    async def purge_stale(self) -> None:
        if not self.dir.is_dir():
            return
        for entry in sorted(self.dir.iterdir()):
            try:
                paths = self.paths_of(entry.name)
            except PlasmaError:  # not a pool entry's name: nothing of ours runs there
                shutil.rmtree(entry, ignore_errors=True)
                continue
            await self._drop(paths)

    def take(self) -> Warm | None:
        """A live waiting process, now the caller's (it closes the process); None when the pool is empty.
        The pool refills when the caller says it is done (`refill`): a launch (fork, jailer) beside the
        caller's boot would compete with it for the CPU."""
        while self._ready:
            warm = self._ready.pop(0)
            if warm.process.alive():
                return warm
            warm.process.close()
            asyncio.get_running_loop().create_task(self._drop(warm.paths))
        self.refill()  # nothing waiting: the caller takes the slow path anyway
        return None

    def refill(self) -> None:
        """Launch what is missing, in the background, `REFILL_AFTER_S` from now: the launch's own work in
        this process (the jail's files and cgroups, the fork) would otherwise run between the create's
        boot and its answer."""
        asyncio.get_running_loop().call_later(REFILL_AFTER_S, self._wake.set)

    async def close(self) -> None:
        """Stop refilling; kill and remove every waiting process (agent stop: no orphans). A launch in
        flight is waited for, not cancelled: a cancelled wait would leave its jailer to start a
        Firecracker after the purge."""
        self._closing = True
        if self._filler is not None:
            self._wake.set()
            await self._filler
            self._filler = None
        while self._ready:
            warm = self._ready.pop()
            warm.process.close()
            await self._drop(warm.paths)
        await self.purge_stale()

    async def _fill_forever(self) -> None:
        failures = 0
        while not self._closing:
            if len(self._ready) >= self.size:
                await self._woken(None)
                continue
            paths = self.paths_of(str(uuid.uuid4()))
            try:
                paths.root.mkdir(parents=True, mode=0o700)  # as a VM's dir is (`move_into`)
                process = await self._spawn(paths)
            except (PlasmaError, OSError) as exc:
                wait = min(RETRY_S * 2**failures, RETRY_MAX_S)
                failures += 1
                log.warning("warm pool: launching a firecracker failed (retrying in %.0fs): %s", wait, exc)
                await self._drop(paths)
                await self._woken(wait)  # back-off of a background loop; `close` ends it early
                continue
            failures = 0
            self.launched += 1
            self._ready.append(Warm(paths, process, await self._made(paths)))

    async def _made(self, paths: FcPaths) -> BootFiles | None:
        """`expect` made in the entry (None: nothing expected, or it could not be made; the create makes
        what it needs then)."""
        files = self.expect
        if files is None or self._prepare is None:
            return None
        try:
            await self._prepare(paths, files)
        except (PlasmaError, OSError) as exc:
            log.info("warm pool: the last create's files not made ahead in %s: %s", paths.root, exc)
            remove_boot_files(files, paths)
            return None
        return files

    async def _woken(self, within_s: float | None) -> None:
        """Until `refill` or `close` (or `within_s` passed)."""
        self._wake.clear()
        if self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), within_s)

    async def _drop(self, paths: FcPaths) -> None:
        try:
            await self._discard(paths)
        except (PlasmaError, OSError) as exc:
            log.warning("warm pool: cannot clean up %s: %s", paths.root, exc)
        shutil.rmtree(paths.root, ignore_errors=True)


def move_into(warm: Warm, vm: FcPaths, handle: bytes) -> None:
    """The entry becomes the VM's dir (which `vm` describes, with the entry's jail id): `handle` written
    into it, then one rename, so the VM appears with its handle (adoptable from then on) and its jail,
    console files and logs in place. The handle is written in place, not through a temp file: the
    entry's rename is what publishes it, whole. Not fsynced: the caller flushes the dir and its parent
    (`flush`). A dir of that VM left without a handle (a create cut short before writing it: nothing
    runs there) is replaced."""
    write_plain(warm.paths.root / HANDLE, handle, create=True)
    try:
        warm.paths.root.rename(vm.root)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or (vm.root / HANDLE).exists():
            raise
        shutil.rmtree(vm.root)
        warm.paths.root.rename(vm.root)
