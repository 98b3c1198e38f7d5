"""The per-VM runtime directory every process-based backend keeps, and the base class that owns it.

`<runtime_dir>/<vm_id>/` holds everything a backend made for one VM; the files every backend shares:

    handle.json   the VmHandle: written FIRST, right after the directory is made, atomically (temp file,
                  fsync, rename). A crash at any later point leaves a directory `handles()` adopts and
                  `delete()` removes; a crash between mkdir and the rename leaves a directory without a
                  handle, which `purge()` removes (DeleteVm of a VM the agent does not know).
    vm.json       the VM as created (device changes rewrite it)
    images.json   the `LocalImage`s its disks were made from
    started.json  facts of the current or last run (pid, started_at, ...)

`VmDirBackend` owns that layout, the per-VM asyncio lock every power and device operation takes,
`handles()` (adoption after an agent restart: hypervisor processes run detached and outlive the agent),
and `delete()`: under the lock, end the process (`_end_for_delete`), forget per-VM state (`_forget`),
remove the directory. A backend (QEMU, Firecracker, mvisor) keeps only its process launch, its stop
protocol, its devices and its own files beside these.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from plasmavmc import validation
from plasmavmc.errors import HypervisorError, InvalidState
from plasmavmc.hypervisor import crashpoints
from plasmavmc.hypervisor.base import HypervisorBackend, LocalImage, UnsupportedFeature, VmHandle
from plasmavmc.hypervisor.common import checked_vm_id, write_atomic
from plasmavmc.hypervisor.process import Process
from plasmavmc.types.codec import dumps, loads
from plasmavmc.types.vm import VirtualMachine, VmResize

HANDLE, VM, IMAGES, STARTED = "handle.json", "vm.json", "images.json", "started.json"


class HasRoot(Protocol):
    """A backend's path layout: anything that knows the VM's directory."""

    @property
    def root(self) -> Path: ...


P = TypeVar("P", bound=HasRoot)


class VmDirBackend(HypervisorBackend, Generic[P]):
    """The base of a backend whose VMs are processes with a runtime directory; `P` is its path layout."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir.absolute()
        self._locks: dict[str, asyncio.Lock] = {}

    # ---------------------------------------------------------------- what each backend provides

    @abc.abstractmethod
    def _paths(self, handle: VmHandle) -> P:
        """The VM's path layout (its `root` is `vm_dir(handle.vm_id)`)."""

    @abc.abstractmethod
    def _process(self, paths: P) -> Process | None:
        """The VM's running hypervisor process, checked against pid reuse; None when it does not run.
        The caller closes it."""

    @abc.abstractmethod
    async def _stop(self, paths: P, grace_s: float, reason: str) -> None:
        """Ask the guest to power off, kill the process after `grace_s`; nothing if it does not run.
        The lock is held; `reason` is recorded so the exit is known as requested."""

    @abc.abstractmethod
    async def _kill(self, paths: P, reason: str) -> None:
        """Kill the process at once (recording `reason`); nothing if it does not run. The lock is held."""

    async def _end_for_delete(self, handle: VmHandle) -> None:
        """Kill the process (the lock is held); a backend that holds more outside the directory
        (cgroups, ...) releases it here too."""
        await self._kill(self._paths(handle), "delete")

    async def _grow_disk(self, paths: P, disk_id: str, size_gib: int) -> None:
        """Grow disk `disk_id` of a stopped VM to `size_gib` (the lock is held); a backend whose disks
        cannot grow refuses."""
        raise UnsupportedFeature("disk_grow", "disks of this backend cannot grow",
                                 field=f"disk_sizes[{disk_id}].size_gib")

    def _forget(self, vm_id: str) -> None:
        """Drop per-VM state kept in memory (usage meters, ...); the default keeps none."""
        return None

    # ---------------------------------------------------------------- layout and files

    def _running_pid(self, paths: P) -> int | None:
        process = self._process(paths)
        if process is None:
            return None
        process.close()
        return process.pid

    def vm_dir(self, vm_id: str) -> Path:
        return self.runtime_dir / checked_vm_id(vm_id)

    def _lock(self, vm_id: str) -> asyncio.Lock:
        return self._locks.setdefault(vm_id, asyncio.Lock())

    def _begin(self, handle: VmHandle, *, durable: bool = True) -> Path:
        """Make the VM's directory and write its handle into it before anything else (`durable=False`:
        the caller flushes it, `common.flush`, before the create returns)."""
        root = self.vm_dir(handle.vm_id)
        crashpoints.reached("create:begin")
        try:
            root.mkdir(parents=True, mode=0o700, exist_ok=True)
            root.chmod(0o700)
            crashpoints.reached("create:dir")
            write_atomic(root / HANDLE, dumps(handle), durable=durable)
        except OSError as exc:
            raise HypervisorError(f"cannot create runtime dir {root}: {exc}") from exc
        crashpoints.reached("create:handle")
        return root

    @staticmethod
    def _write_handle(paths: HasRoot, handle: VmHandle) -> None:
        write_atomic(paths.root / HANDLE, dumps(handle))

    @staticmethod
    def _save_vm(paths: HasRoot, vm: VirtualMachine, images: Mapping[str, LocalImage], *,
                 durable: bool = True) -> None:
        write_atomic(paths.root / IMAGES, json.dumps({k: v.to_json() for k, v in images.items()}).encode(),
                     durable=durable)
        write_atomic(paths.root / VM, dumps(vm), durable=durable)

    @staticmethod
    def _load_vm(paths: HasRoot) -> tuple[VirtualMachine, dict[str, LocalImage]]:
        try:
            vm = loads(VirtualMachine, (paths.root / VM).read_bytes())
            raw = json.loads((paths.root / IMAGES).read_bytes())
        except FileNotFoundError as exc:
            raise InvalidState(f"VM {paths.root.name} was not created on this node") from exc
        return vm, {key: LocalImage.from_json(value) for key, value in raw.items()}

    @staticmethod
    def _vm_or_none(paths: HasRoot) -> VirtualMachine | None:
        try:
            return loads(VirtualMachine, (paths.root / VM).read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def _started(paths: HasRoot) -> dict[str, str]:
        try:
            data = json.loads((paths.root / STARTED).read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    # ---------------------------------------------------------------- power operations on the process

    async def stop(self, handle: VmHandle, timeout: float) -> None:
        async with self._lock(handle.vm_id):
            await self._stop(self._paths(handle), timeout, "stop")

    async def kill(self, handle: VmHandle) -> None:
        async with self._lock(handle.vm_id):
            await self._kill(self._paths(handle), "kill")

    async def _restart(self, handle: VmHandle, grace_s: float, reason: str) -> None:
        """A cold reboot (`grace_s` > 0: the guest powers off, killed after `grace_s`) or a hard reset
        (0: killed at once), then a fresh process (`start`)."""
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            if self._running_pid(paths) is None:
                raise InvalidState(f"cannot {reason} VM {handle.vm_id}: it is not running")
            if grace_s > 0:
                await self._stop(paths, grace_s, reason)
            else:
                await self._kill(paths, reason)
        await self.start(handle)

    async def resize(self, handle: VmHandle, change: VmResize) -> None:
        """Rewrite the stopped VM's spec (read at its next start) and grow its disks, under the lock."""
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            if self._running_pid(paths) is not None:
                raise InvalidState(f"VM {handle.vm_id} is running: stop it first to resize it", field="vm_id")
            vm, images = self._load_vm(paths)
            spec = validation.resized_spec(vm.spec, change)
            for disk in spec.disks:
                if disk.id in change.disk_sizes:
                    await self._grow_disk(paths, disk.id, disk.size_gib)
            self._save_vm(paths, dataclasses.replace(vm, spec=spec), images)

    # ---------------------------------------------------------------- adoption and removal

    async def handles(self) -> list[VmHandle]:
        found = []
        for path in sorted(self.runtime_dir.glob(f"*/{HANDLE}")):
            try:
                found.append(loads(VmHandle, path.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being deleted right now
        return found

    async def delete(self, handle: VmHandle) -> None:
        root = self.vm_dir(handle.vm_id)
        async with self._lock(handle.vm_id):
            await self._end_for_delete(handle)
            self._forget(handle.vm_id)
            await _remove(root)
        self._locks.pop(handle.vm_id, None)

    async def purge(self, vm_id: str) -> None:
        """Remove what is left of a VM the agent holds no handle for (a create cut short)."""
        root = self.vm_dir(vm_id)
        try:
            handle = loads(VmHandle, (root / HANDLE).read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            async with self._lock(vm_id):  # no handle: nothing was started from this directory
                await _remove(root)
            self._locks.pop(vm_id, None)
            return
        await self.delete(handle)


async def _remove(root: Path) -> None:
    """`root` and everything in it, removed in a thread: a VM's tree (its jail, its disks' extents) takes
    10-15 ms to remove here, which the event loop (every call and heartbeat of the node) must not wait."""
    try:
        await asyncio.to_thread(shutil.rmtree, root)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise HypervisorError(f"cannot remove runtime dir {root}: {exc}") from exc
