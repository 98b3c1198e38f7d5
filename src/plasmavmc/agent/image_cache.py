"""The node-local image cache: pull-through from the control plane's `DownloadImage`, verified, and
kept under `[storage] cache_size_gib` by least-recently-used eviction.

An image lands at `<cache>/<image_id>/<sha256>` only complete and with the sha256 its record declares:
it is streamed to a temporary file in the same directory, hashed on the way, and renamed into place.
Concurrent requests for the same image wait for one download. A file's mtime is its last use.

A VM's disks are overlays whose backing file is the cached base, so a base must never be evicted while
a VM on this node uses it: `fetch(..., pin_for=vm_id)` records the VM's pins in `<cache>/.pins/<vm_id>`
(a file, so pins survive an agent restart) and `unpin(vm_id)` drops them when the VM is deleted. The
size limit is soft: if every cached file is pinned, a needed image is still fetched (and logged).
`NodeVms` pins every image a VM's disks (and their kernel and initrd) use when it creates the VM or
hot-plugs a disk (`pin`: all of them in one write, before they are fetched). A pin holds at once (in
memory: eviction sees it); its file is written at the event loop's next turn, so a create's pins are
not written on its way to its hypervisor (a Firecracker boot's requests go out first; 0.26 ms there).

An image is written sparsely: each all-zero block of `SPARSE_BLOCK` bytes is left a hole
(`write_sparse`), so a raw image that is mostly empty takes its data's room on the node, and a VM's copy
of it (Firecracker's disks: `SEEK_DATA`/`SEEK_HOLE`) copies only its data.

A download in progress is a `.<sha256>.<pid>.partial` file beside its final place: eviction counts its
bytes as used (it never evicts one), and `remove_partials()` — run when the agent starts — removes those
a killed agent left behind, which nothing would ever finish or account for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from plasmavmc import validation
from plasmavmc.config.credentials import default_credential
from plasmavmc.errors import HypervisorError
from plasmavmc.observe.metrics import IMAGE_CACHE_FETCHES
from plasmavmc.types.image import Image
from plasmavmc.v1 import image_pb2, image_pb2_grpc
from plasmavmc.wire.status import from_rpc_error

log = logging.getLogger(__name__)
GIB = 1024**3
SPARSE_BLOCK = 64 * 1024  # a downloaded run of zeros this long (at this alignment in a chunk) is a hole
_ZEROS = bytes(SPARSE_BLOCK)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def write_sparse(fd: int, offset: int, data: bytes) -> None:
    """`data` written at `offset` of `fd`, except its all-zero blocks (holes: they read as zeros). The
    caller sets the file's length once the last chunk is written (`os.ftruncate`)."""
    for start in range(0, len(data), SPARSE_BLOCK):
        block = data[start:start + SPARSE_BLOCK]
        if block != _ZEROS[:len(block)]:
            os.pwrite(fd, block, offset + start)


class ImageCache:
    def __init__(
        self, root: Path, channel: grpc.aio.Channel | Sequence[grpc.aio.Channel], capacity_bytes: int = 100 * GIB,
        credential: str | None = None,
    ) -> None:
        """`channel`: the control plane, or several replicas of it (tried in turn while unreachable);
        `credential`: sent with each download (default: `config.credentials.default_credential()`, looked
        up at each download, so a bootstrap file the server writes after the agent started is found)."""
        self._credential = credential
        self.root = root
        self.capacity = capacity_bytes
        channels = list(channel) if isinstance(channel, Sequence) else [channel]
        self._stubs = [image_pb2_grpc.ImageServiceStub(c) for c in channels]
        self._locks: dict[str, asyncio.Lock] = {}
        self._unwritten: dict[str, set[str]] = {}  # pins held whose file is not written (yet), by VM id
        self._evicting = asyncio.Lock()
        self.downloads = 0  # completed downloads, for the agent's metrics and the tests

    def _auth(self) -> tuple[tuple[str, str], ...]:
        credential = default_credential() if self._credential is None else self._credential
        return (("authorization", f"Bearer {credential}"),) if credential else ()

    def path_of(self, image: Image) -> Path:
        validation.name(image.id, "image.id")
        if _SHA256_HEX.fullmatch(image.checksum) is None:
            raise HypervisorError(f"image {image.id} has no valid sha256 checksum")
        return self.root / image.id / image.checksum

    async def fetch(self, image: Image, org_id: str, pin_for: str | None = None) -> Path:
        path = self.path_of(image)
        if pin_for is not None:
            self._pin(pin_for, path)
        lock = self._locks.setdefault(str(path), asyncio.Lock())
        async with lock:
            try:
                os.utime(path)  # its last use (eviction's order)
                IMAGE_CACHE_FETCHES.labels("hit").inc()
            except FileNotFoundError:
                IMAGE_CACHE_FETCHES.labels("miss").inc()
                await self._make_room(image.size_bytes)
                await self._download(image, org_id, path)
        return path

    # --- pins ----------------------------------------------------------------------------------------

    def _pin_file(self, vm_id: str) -> Path:
        return self.root / ".pins" / validation.name(vm_id, "vm_id")

    def pin(self, vm_id: str, images: Sequence[Image]) -> None:
        """Pin every one of `images` for the VM in one write (then `fetch` them without `pin_for`)."""
        self._pin(vm_id, *(self.path_of(i) for i in images))

    def _pin(self, vm_id: str, *paths_: Path) -> None:
        """Hold `paths_` for the VM now; its pin file follows at the loop's next turn (at once where no
        loop runs)."""
        self._pin_file(vm_id)  # the VM id checked before anything is held
        scheduled = vm_id in self._unwritten
        self._unwritten.setdefault(vm_id, set()).update(str(p) for p in paths_)
        if not scheduled:
            try:
                asyncio.get_running_loop().call_soon(self._write_pins, vm_id)
            except RuntimeError:
                self._write_pins(vm_id)

    def _write_pins(self, vm_id: str) -> None:
        """The VM's pin file, with the pins held for it added (none held: unpinned meanwhile). Should
        the write fail, they go on holding in memory (until the agent restarts), and it says so."""
        held = self._unwritten.get(vm_id)
        if held is None:
            return
        pin_file = self._pin_file(vm_id)
        paths = set(self._read_pins(pin_file)) | held
        tmp = pin_file.with_name(f".{pin_file.name}.tmp")
        data = json.dumps(sorted(paths)).encode()
        try:
            try:
                tmp.write_bytes(data)
            except FileNotFoundError:  # the first pin of this cache: `.pins/` made then
                pin_file.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(data)
            os.replace(tmp, pin_file)
        except OSError as exc:
            log.warning("image cache: pins of vm %s not written (%s): they hold until the agent restarts",
                        vm_id, exc)
            return
        del self._unwritten[vm_id]

    def unpin(self, vm_id: str) -> None:
        self._unwritten.pop(vm_id, None)
        self._pin_file(vm_id).unlink(missing_ok=True)

    def prune_pins(self, live_vm_ids: set[str]) -> None:
        """Drop the pins of VMs this node no longer has (e.g. deleted while the agent was down)."""
        for pin_file in (self.root / ".pins").glob("*"):
            if not pin_file.name.startswith(".") and pin_file.name not in live_vm_ids:
                pin_file.unlink(missing_ok=True)

    @staticmethod
    def _read_pins(pin_file: Path) -> list[str]:
        try:
            return [str(p) for p in json.loads(pin_file.read_text())]
        except (OSError, ValueError):
            return []

    def pinned(self) -> set[Path]:
        held = {Path(p) for paths in self._unwritten.values() for p in paths}
        return held | {Path(p) for f in (self.root / ".pins").glob("[!.]*") for p in self._read_pins(f)}

    def remove_partials(self) -> int:
        """Remove every partial download (call at start, before any fetch); returns how many."""
        removed = 0
        for path in self.root.glob("[!.]*/.*.partial"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
                log.info("image cache: removed partial download %s", path)
        return removed

    # --- eviction ------------------------------------------------------------------------------------

    def partial_bytes(self) -> int:
        """Bytes held by downloads in progress (and any partial file left behind)."""
        total = 0
        for path in self.root.glob("[!.]*/.*.partial"):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def entries(self) -> list[tuple[float, int, Path]]:
        """Cached images as (last use, size, path), least recently used first."""
        found = []
        for path in self.root.glob("[!.]*/[!.]*"):
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                found.append((st.st_mtime, st.st_size, path))
        return sorted(found)

    async def _make_room(self, needed: int) -> None:
        async with self._evicting:
            entries = self.entries()
            used = sum(size for _, size, _ in entries) + self.partial_bytes()
            keep = self.pinned() | {Path(p) for p, lock in self._locks.items() if lock.locked()}
            for _, size, path in entries:
                if used + needed <= self.capacity:
                    return
                if path in keep:
                    continue
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    path.parent.rmdir()
                used -= size
                log.info("image cache: evicted %s (%d bytes)", path, size)
            if used + needed > self.capacity:
                log.warning("image cache over its limit: %d bytes in use are pinned by VMs", used + needed)

    # --- download ------------------------------------------------------------------------------------

    async def _download(self, image: Image, org_id: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        digest = hashlib.sha256()
        request = image_pb2.DownloadImageRequest(org_id=org_id, image_id=image.id)
        started = time.monotonic()
        try:
            for attempt, stub in enumerate(self._stubs):
                digest = hashlib.sha256()
                try:
                    with tmp.open("wb") as out:
                        size = 0
                        async for part in stub.DownloadImage(request, metadata=self._auth()):
                            digest.update(part.chunk)
                            await asyncio.to_thread(write_sparse, out.fileno(), size, part.chunk)
                            size += len(part.chunk)
                        os.ftruncate(out.fileno(), size)  # a trailing run of zeros stays a hole
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == len(self._stubs) - 1:
                        raise
            if digest.hexdigest() != image.checksum:
                raise HypervisorError(f"image {image.id}: downloaded bytes do not match sha256 {image.checksum[:12]}")
            os.replace(tmp, path)
            self.downloads += 1
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            tmp.unlink(missing_ok=True)
        log.info("image cache: fetched %s in %.2fs", image.id, time.monotonic() - started)
