"""The `ImageStore` interface: where image bytes live (spec §8.2), whatever the backend.

An object is addressed by `BlobRef(org_id, image_id, version)`, laid out as
`images/{org_id}/{image_id}/{version}` in every backend; `version` is the first 16 hex digits of the
content's sha256, so a version never changes once written. The contract every backend keeps (checked
over each one by `tests/contract/test_image_store_contract.py`):

- `write` makes an object visible only complete: if the chunk stream fails part-way, nothing is left —
  no object, no temporary file, no open multipart upload;
- `read` streams from an offset; `size` is None for an absent object; `delete` of an absent object is
  a no-op.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from plasmavmc import validation
from plasmavmc.types.image import Image

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BlobRef:
    org_id: str
    image_id: str
    version: str

    def __post_init__(self) -> None:
        validation.name(self.org_id, "org_id")
        validation.name(self.image_id, "image_id")
        validation.name(self.version, "version")

    @property
    def key(self) -> str:
        return f"images/{self.org_id}/{self.image_id}/{self.version}"

    @classmethod
    def of(cls, image: Image) -> BlobRef:
        return cls(image.org_id, image.id, version_of(image.checksum))


def version_of(sha256_hex: str) -> str:
    return sha256_hex[:16] or "1"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def file_chunks(path: Path, offset: int = 0) -> AsyncIterator[bytes]:
    """A local file's bytes from `offset`, read off the event loop."""
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


class ImageStore(abc.ABC):
    """Image bytes by `BlobRef`. Implementations: `LocalImageStore`, `S3ImageStore`."""

    @abc.abstractmethod
    async def write(self, ref: BlobRef, chunks: AsyncIterator[bytes]) -> int:
        """Store the stream as `ref` (replacing it), all or nothing; returns the byte count."""

    @abc.abstractmethod
    def read(self, ref: BlobRef, offset: int = 0) -> AsyncIterator[bytes]:
        """The object's bytes from `offset`; IMAGE_NOT_FOUND if absent."""

    @abc.abstractmethod
    async def size(self, ref: BlobRef) -> int | None:
        """The object's size in bytes, or None if it does not exist."""

    @abc.abstractmethod
    async def delete(self, ref: BlobRef) -> None:
        """Remove the object; absent is fine."""

    async def close(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Release connections (nothing by default)."""

    async def put_file(self, ref: BlobRef, path: Path) -> int:
        """Store a local file as `ref`."""
        return await self.write(ref, file_chunks(path))

    async def get_file(self, ref: BlobRef, dest: Path) -> None:
        """Copy the object into the local file `dest` (the caller owns `dest`, e.g. a temp path)."""
        with dest.open("wb") as out:
            async for chunk in self.read(ref):
                await asyncio.to_thread(out.write, chunk)
