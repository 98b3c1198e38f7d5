"""A Firecracker VM's disks: one raw file per disk, its own copy of the image, and sparse copies of it.

Firecracker's block device takes raw files only (no qcow2, no backing chains), so each disk is the
image converted (qcow2, by `qemu-img convert`, argv only) or copied sparsely (raw: data extents found
with SEEK_DATA/SEEK_HOLE and copied with `copy_file_range`, holes kept), then grown to `size_gib`.
Every file is made under a temporary name and renamed into place: a crash never leaves a half-made
disk that a retried `create` or `restore` would take as done.
"""

from __future__ import annotations

import asyncio
import functools
import os
import stat
from pathlib import Path

from plasmavmc.errors import HypervisorError

GIB = 1024**3
_TIMEOUT_S = 120.0
INLINE_COPY_BYTES = 1024**2  # a raw image with at most this much data is copied on the loop when not fsynced


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def sparse_copy(src: Path, dst: Path, *, durable: bool = True, min_size: int = 0) -> None:
    """Copy `src` to `dst` (atomically), keeping holes, at least `min_size` bytes long (grown with a
    hole); `durable=False`: the caller flushes it later (`common.flush`) before it counts on it."""
    tmp = _tmp(dst)
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            copy_extents(fin.fileno(), fout.fileno())
            os.ftruncate(fout.fileno(), max(os.fstat(fin.fileno()).st_size, min_size))
            if durable:
                os.fsync(fout.fileno())
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HypervisorError(f"cannot copy {src} to {dst}: {exc}") from exc


def copy_extents(fd_in: int, fd_out: int) -> None:
    """Write every data extent of `fd_in` at the same offset of `fd_out`; holes are left alone."""
    size = os.fstat(fd_in).st_size
    offset = 0
    while offset < size:
        try:
            data = os.lseek(fd_in, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole remains
            break
        hole = os.lseek(fd_in, data, os.SEEK_HOLE)
        _copy_range(fd_in, fd_out, data, hole - data)
        offset = hole


def _copy_range(fd_in: int, fd_out: int, offset: int, length: int) -> None:
    while length > 0:
        done = os.copy_file_range(fd_in, fd_out, length, offset, offset)
        if done == 0:
            raise OSError(f"unexpected end of file at {offset}")
        offset += done
        length -= done


async def make_disk(qemu_img: str, image: Path, image_format: str, dst: Path, size_gib: int,
                    *, durable: bool = True) -> None:
    """`dst`: a raw copy of `image` grown to `size_gib`; no-op when it exists (`durable` as `sparse_copy`)."""
    if dst.exists():
        return
    try:
        st = image.stat()
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise HypervisorError(f"image file {image} does not exist on this node")
    if image_format not in ("raw", "qcow2"):
        raise HypervisorError(f"image {image} has format {image_format!r}; firecracker takes raw or qcow2")
    if image_format == "raw":  # its own temp file, grown and renamed into place
        copy = functools.partial(sparse_copy, image, dst, durable=durable, min_size=size_gib * GIB)
        if not durable and st.st_blocks * 512 <= INLINE_COPY_BYTES:
            copy()  # a few small writes, no fsync: less than the thread hop would cost
        else:
            await asyncio.to_thread(copy)
        return
    tmp = _tmp(dst)
    tmp.unlink(missing_ok=True)
    await _convert(qemu_img, image, tmp)
    try:
        if os.path.getsize(tmp) < size_gib * GIB:
            os.truncate(tmp, size_gib * GIB)
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HypervisorError(f"cannot make disk {dst}: {exc}") from exc


async def _convert(qemu_img: str, image: Path, out: Path) -> None:
    argv = [qemu_img, "convert", "-q", "-f", "qcow2", "-O", "raw", str(image.absolute()), str(out)]
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), _TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise HypervisorError(f"qemu-img convert {image} failed: {exc or type(exc).__name__}") from exc
    if proc.returncode != 0:
        out.unlink(missing_ok=True)
        raise HypervisorError(f"qemu-img convert {image} failed: {err.decode(errors='replace').strip()}")
