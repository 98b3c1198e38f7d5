"""A VM's disks as qcow2 overlays on cached images, made with `qemu-img` (argv lists only).

The image (raw or qcow2, detected by the image layer, never guessed here) is the overlay's backing file,
referenced by absolute path and opened read-only by QEMU, so the base is never written and many VMs
share it. An overlay is first created under a temporary name and renamed into place, so a crash never
leaves a half-made disk that a retried `create` would take as done.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from plasmavmc.errors import HypervisorError

GIB = 1024**3
BACKING_FORMATS = ("raw", "qcow2")
_TIMEOUT_S = 60.0
EXPORT_TIMEOUT_S = 3600.0


async def _run(argv: list[str], timeout: float = _TIMEOUT_S) -> bytes:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (OSError, TimeoutError) as exc:
        raise HypervisorError(f"{argv[0]} {argv[1]} failed: {exc or type(exc).__name__}") from exc
    if proc.returncode != 0:
        raise HypervisorError(f"{argv[0]} {argv[1]} failed: {err.decode(errors='replace').strip()}")
    return out


async def virtual_size(qemu_img: str, path: Path, fmt: str) -> int:
    """The virtual size in bytes of the image at `path` (format given, never probed)."""
    out = await _run([qemu_img, "info", "--output=json", "-f", fmt, str(path)])
    try:
        return int(json.loads(out)["virtual-size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HypervisorError(f"qemu-img info {path}: unexpected output") from exc


def _checked_base(base: Path, base_format: str) -> Path:
    if base_format not in BACKING_FORMATS:
        raise HypervisorError(f"image {base} has format {base_format!r}; expected one of {BACKING_FORMATS}")
    base = base.absolute()
    if not base.is_file():
        raise HypervisorError(f"image file {base} does not exist on this node")
    return base


async def create_overlay(qemu_img: str, overlay: Path, base: Path, base_format: str, size_gib: int) -> None:
    """Make `overlay` (qcow2) on `base`, sized max(base virtual size, size_gib); no-op if it exists."""
    if os.path.exists(overlay):
        return
    base = _checked_base(base, base_format)
    size = max(await virtual_size(qemu_img, base, base_format), size_gib * GIB)
    tmp = overlay.with_name(f".{overlay.name}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    await _run([qemu_img, "create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base),
                str(tmp), str(size)])
    os.replace(tmp, overlay)


async def create_blank(qemu_img: str, path: Path, size_gib: int) -> None:
    """Make an empty qcow2 disk of `size_gib` at `path` (temp name + rename); no-op if it exists."""
    if os.path.exists(path):
        return
    tmp = path.with_name(f".{path.name}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    await _run([qemu_img, "create", "-q", "-f", "qcow2", str(tmp), str(size_gib * GIB)])
    os.replace(tmp, path)


async def grow(qemu_img: str, disk: Path, size_gib: int) -> None:
    """Grow the qcow2 `disk` (no QEMU has it open) to `size_gib`; nothing when it is that large already
    (a retried resize). `qemu-img resize` takes the image lock, so a disk in use is refused."""
    if await virtual_size(qemu_img, disk, "qcow2") >= size_gib * GIB:
        return
    await _run([qemu_img, "resize", "-q", "-f", "qcow2", str(disk.absolute()), str(size_gib * GIB)])


async def snapshot(qemu_img: str, disk: Path, action: str, tag: str) -> None:
    """`qemu-img snapshot` on a disk no QEMU has open: action -c (create), -a (apply) or -d (delete)."""
    if action not in ("-c", "-a", "-d"):
        raise ValueError(action)
    # `snapshot` has no -f: --image-opts names the format, so nothing is probed.
    image_opts = "driver=qcow2,file.filename=" + str(disk.absolute()).replace(",", ",,")
    await _run([qemu_img, "snapshot", "--image-opts", action, tag, image_opts])


async def export(qemu_img: str, disk: Path, dest: Path) -> None:
    """Write the qcow2 `disk` to `dest` as a standalone qcow2: `qemu-img convert` reads through the
    backing chain, so the copy has every byte the guest sees and no backing file. Written under a temp
    name and renamed. qemu-img takes the image lock, so a disk a QEMU holds open is refused, not copied."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        await _run([qemu_img, "convert", "-q", "-f", "qcow2", "-O", "qcow2", str(disk.absolute()), str(tmp)],
                   EXPORT_TIMEOUT_S)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
