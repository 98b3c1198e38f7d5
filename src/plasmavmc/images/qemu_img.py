"""`qemu-img` on untrusted image files: what a file really is, and conversion between our four formats.

An image is whatever its bytes say, never what its name or its uploader claims: `inspect()` runs
`qemu-img info --output=json` (format probed from content) under resource limits (the OpenStack
practice: a crafted header must not eat the host's memory or CPU), maps qemu's format name to ours and
refuses anything that could make QEMU open another file on the host — a backing file, a qcow2 external
data file, a vmdk extent that is not the file itself. `check()` runs `qemu-img check` under the same
limits: an image becomes AVAILABLE only if it is consistent. `convert()` always names both formats
(`-f`, `-O`), so nothing is probed twice, and writes through a temporary name renamed into place.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plasmavmc.errors import InvalidArgument, PlasmaError
from plasmavmc.types.image import ImageFormat

QEMU_IMG = "qemu-img"
INFO_TIMEOUT_S = 60.0
CONVERT_TIMEOUT_S = 3600.0
INFO_MEMORY_LIMIT = 1024**3  # address space for `qemu-img info` on an untrusted file
INFO_CPU_LIMIT_S = 30
CHECK_TIMEOUT_S = 600.0
#: `qemu-img check` exit codes: clean, only leaked clusters, format has no check
CHECK_OK, CHECK_LEAKS_ONLY, CHECK_UNSUPPORTED = 0, 3, 63

#: our format -> qemu's driver name (VHD is qemu's "vpc")
QEMU_FORMAT = {ImageFormat.RAW: "raw", ImageFormat.QCOW2: "qcow2", ImageFormat.VMDK: "vmdk", ImageFormat.VHD: "vpc"}
_OURS = {v: k for k, v in QEMU_FORMAT.items()}
#: creation options: a VHD keeps the exact virtual size (no CHS rounding); vmdk stays one file
_CREATE_OPTIONS = {
    ImageFormat.VHD: ["-o", "force_size=on,subformat=dynamic"],
    ImageFormat.VMDK: ["-o", "subformat=monolithicSparse"],
}


class QemuImgError(PlasmaError):
    """qemu-img itself failed (not the input's fault)."""


@dataclass(frozen=True)
class ImageInfo:
    format: ImageFormat
    virtual_size: int
    actual_size: int


def _limited(argv: list[str]) -> list[str]:
    """`argv` under `prlimit` (util-linux): a preexec_fn in a threaded server is not fork-safe."""
    return ["prlimit", f"--as={INFO_MEMORY_LIMIT}", f"--cpu={INFO_CPU_LIMIT_S}", "--", *argv]


async def _run(argv: list[str], timeout: float, *, limited: bool = False) -> tuple[int, bytes, bytes]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *(_limited(argv) if limited else argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise QemuImgError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


async def inspect(path: Path, field: str = "image") -> ImageInfo:
    """What the file at `path` is; INVALID_ARGUMENT (naming `field`) if it is unusable or unsafe."""
    try:
        code, out, err = await _run([QEMU_IMG, "info", "--output=json", str(path)], INFO_TIMEOUT_S, limited=True)
    except TimeoutError:
        raise InvalidArgument(field, "qemu-img could not read the image in time") from None
    if code != 0:
        why = err.decode(errors="replace").strip()[:300] or f"qemu-img exited with {code}"
        raise InvalidArgument(field, f"not a readable disk image: {why}")
    try:
        info = json.loads(out)
    except ValueError as exc:
        raise QemuImgError("qemu-img info printed no JSON") from exc
    return check_info(info, path, field)


def check_info(info: dict[str, Any], path: Path, field: str = "image") -> ImageInfo:
    """Refuse an image that names another host file; map qemu's answer to `ImageInfo`."""
    fmt = str(info.get("format", ""))
    if fmt not in _OURS:
        raise InvalidArgument(field, f"unsupported image format {fmt[:40]!r} (raw, qcow2, vmdk, vhd are)")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise InvalidArgument(field, f"{fmt} image has a backing file: refused (images must be self-contained)")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise InvalidArgument(field, "qcow2 image has an external data file: refused")
    if specific.get("encrypt"):
        raise InvalidArgument(field, "encrypted images are not supported")
    for extent in specific.get("extents") or ():
        if Path(str(extent.get("filename", ""))).resolve() != path.resolve():
            raise InvalidArgument(field, "vmdk image refers to another file (extent): refused")
    try:
        return ImageInfo(_OURS[fmt], int(info["virtual-size"]), int(info.get("actual-size", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise QemuImgError("qemu-img info gave no virtual size") from exc


async def check(path: Path, fmt: ImageFormat, field: str = "image") -> None:
    """`qemu-img check` (under the same limits as `info`): INVALID_ARGUMENT if the image is corrupt
    or cannot be checked (a truncated qcow2 opens fine but its tables point past its end). Leaked
    clusters are harmless and pass; a format qemu cannot check (raw, vhd) passes unchecked."""
    argv = [QEMU_IMG, "check", "--output=json", "-f", QEMU_FORMAT[fmt], str(path)]
    try:
        code, out, err = await _run(argv, CHECK_TIMEOUT_S, limited=True)
    except TimeoutError:
        raise InvalidArgument(field, "qemu-img could not check the image in time") from None
    if code in (CHECK_OK, CHECK_LEAKS_ONLY, CHECK_UNSUPPORTED):
        return
    try:
        corruptions = int(json.loads(out).get("corruptions", 0))
    except (ValueError, AttributeError):
        corruptions = 0
    first = err.decode(errors="replace").strip().splitlines()[:1]
    why = f"{corruptions} corruption(s)" if corruptions else "the check could not complete"
    raise InvalidArgument(field, f"{fmt.value} image fails its consistency check: {why}"
                                 + (f" ({first[0][:200]})" if first else ""))


async def convert(src: Path, src_format: ImageFormat, dest: Path, dest_format: ImageFormat) -> None:
    """Write `src` as `dest_format` to `dest` (atomically: temp file in the same dir, then rename)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.converting")
    argv = [
        QEMU_IMG,
        "convert",
        "-q",
        "-f",
        QEMU_FORMAT[src_format],
        "-O",
        QEMU_FORMAT[dest_format],
        *_CREATE_OPTIONS.get(dest_format, []),
        str(src),
        str(tmp),
    ]
    try:
        code, _, err = await _run(argv, CONVERT_TIMEOUT_S)
        if code != 0:
            raise QemuImgError(f"qemu-img convert to {dest_format.value} failed: {err.decode(errors='replace')[:300]}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
