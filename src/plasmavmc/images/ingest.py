"""Taking image bytes in: a request checked before any byte is read, bytes staged in a private temp
file (sha256 computed on the way), then judged by content — never by the uploader's word.

`NewImage` mirrors `CreateImageRequest` field for field. `staged()` is the only place incoming bytes are
written: a temporary file that is removed on every way out, so an interrupted upload leaves nothing.
`judge()` turns a staged file into the facts an image record stores (detected format, sizes, sha256),
checking the declared checksum, the declared format and `min_disk_gib` against what the bytes are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from plasmavmc import validation
from plasmavmc.errors import InvalidArgument, PermissionDenied
from plasmavmc.images import qemu_img
from plasmavmc.images.fetch import UrlPolicy
from plasmavmc.images.qemu_img import ImageInfo
from plasmavmc.types.image import Architecture, ImageFormat, ImageSource, OsType, Visibility

GIB = 1024**3
MAX_IMAGE_BYTES = 256 * GIB
SYSTEM_ORG = "system"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
URL_TIMEOUT_S = 3600
DEFAULT_MAX_VIRTUAL_GIB = 2048


@dataclass(frozen=True)
class NewImage:
    name: str
    org_id: str
    visibility: Visibility | None = None
    shared_orgs: tuple[str, ...] = ()
    source: ImageSource | None = None
    format: ImageFormat | None = None
    checksum: str = ""
    os_type: OsType | None = None
    os_version: str = ""
    architecture: Architecture | None = None
    min_disk_gib: int = 0
    min_memory_mib: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


def check_new(new: NewImage) -> None:
    """Everything about a create request that can be checked before reading a byte."""
    validation.name(new.name, "name")
    validation.name(new.org_id, "org_id")
    check_sharing(new.org_id, new.visibility, new.shared_orgs)
    if new.checksum and not _SHA256_RE.fullmatch(new.checksum):
        raise InvalidArgument("checksum", "must be a sha256 as 64 lowercase hex digits")
    if new.os_version:
        validation.name(new.os_version, "os_version")
    if new.min_disk_gib > validation.MAX_DISK_GIB:
        raise InvalidArgument("min_disk_gib", f"at most {validation.MAX_DISK_GIB}")
    if new.min_memory_mib > validation.MAX_MEMORY_MIB:
        raise InvalidArgument("min_memory_mib", f"at most {validation.MAX_MEMORY_MIB}")
    validation.image_metadata(new.metadata)


def check_sharing(org_id: str, visibility: Visibility | None, shared_orgs: tuple[str, ...]) -> None:
    if visibility == Visibility.PUBLIC and org_id != SYSTEM_ORG:
        raise PermissionDenied(f"only the {SYSTEM_ORG!r} org publishes public images", field="visibility")
    if shared_orgs and visibility != Visibility.SHARED:
        raise InvalidArgument("shared_orgs", "only with visibility SHARED")
    for i, org in enumerate(shared_orgs):
        validation.name(org, f"shared_orgs[{i}]")


@dataclass(frozen=True)
class Judged:
    info: ImageInfo
    sha256: str
    size: int
    min_disk_gib: int


@contextlib.asynccontextmanager
async def staged(staging: Path) -> AsyncIterator[Path]:
    """A fresh temp path under `staging`, removed when the block ends (success or not)."""
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f".{uuid.uuid4().hex}.partial"
    try:
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def receive(chunks: AsyncIterator[bytes], dest: Path, field_name: str = "chunk") -> str:
    """Write the stream to `dest`, returning its sha256; refuses more than MAX_IMAGE_BYTES."""
    digest = hashlib.sha256()
    size = 0
    with dest.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_IMAGE_BYTES:
                raise InvalidArgument(field_name, f"image larger than {MAX_IMAGE_BYTES // GIB} GiB")
            digest.update(chunk)
            await asyncio.to_thread(out.write, chunk)
        await asyncio.to_thread(os.fsync, out.fileno())
    return digest.hexdigest()


async def judge(path: Path, sha256: str, new: NewImage, field_name: str = "chunk",
                max_virtual_gib: int = DEFAULT_MAX_VIRTUAL_GIB) -> Judged:
    """The facts about a staged file; INVALID_ARGUMENT (naming the field) if it is not what was declared,
    is larger than `max_virtual_gib` once expanded, or fails `qemu-img check`."""
    if new.checksum and new.checksum != sha256:
        raise InvalidArgument("checksum", f"declared {new.checksum[:16]}..., received data has {sha256[:16]}...")
    info = await qemu_img.inspect(path, field_name)
    if new.format is not None and new.format != info.format:
        raise InvalidArgument("format", f"declared {new.format.value}, but the content is {info.format.value}")
    needed = -(-info.virtual_size // GIB)
    if needed > max_virtual_gib:
        raise InvalidArgument(field_name, f"the image's virtual size ({info.virtual_size} bytes) is over this "
                                          f"platform's bound of {max_virtual_gib} GiB ([images] max_virtual_size_gib)")
    await qemu_img.check(path, info.format, field_name)
    if new.min_disk_gib and needed > new.min_disk_gib:
        raise InvalidArgument("min_disk_gib", f"{new.min_disk_gib} GiB is less than the image's {needed} GiB")
    return Judged(info, sha256, path.stat().st_size, max(new.min_disk_gib, needed))


@dataclass(frozen=True)
class IngestLimits:
    """What image ingest accepts beyond the request itself (server config `[images]`)."""

    max_virtual_gib: int = DEFAULT_MAX_VIRTUAL_GIB
    url: UrlPolicy = field(default_factory=UrlPolicy)
