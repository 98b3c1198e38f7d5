"""The local-directory image store: image files under `<root>/images/{org_id}/{image_id}/{version}`.

The path layout is the spec's (§8.2). Files only ever appear complete: they are written to a temporary
name in the same directory and renamed into place. Ids reaching a path are validated names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from plasmavmc import validation
from plasmavmc.errors import ImageNotFound
from plasmavmc.types.image import Image

CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, org_id: str, image_id: str, version: str) -> Path:
        validation.name(org_id, "org_id")
        validation.name(image_id, "image_id")
        validation.name(version, "version")
        return self.root / "images" / org_id / image_id / version

    async def import_file(self, src: Path, org_id: str, image_id: str, version: str) -> Path:
        """Copy `src` into the store (atomically); a file already there is kept."""
        dest = self.path_of(org_id, image_id, version)
        if dest.exists():
            return dest

        def copy() -> None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)

        await asyncio.to_thread(copy)
        return dest

    def file_of(self, image: Image) -> Path:
        path = self.path_of(image.org_id, image.id, image.checksum[:16] or "1")
        if not path.is_file():
            raise ImageNotFound(f"image {image.id!r} has no data in the image store")
        return path

    async def read(self, image: Image, offset: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """The image's bytes from `offset`, as (offset, chunk) pairs."""
        path = self.file_of(image)
        with path.open("rb") as f:
            f.seek(offset)
            while True:
                chunk = await asyncio.to_thread(f.read, CHUNK)
                if not chunk:
                    return
                yield offset, chunk
                offset += len(chunk)
