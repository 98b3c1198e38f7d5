"""The local-directory image store: image files under `<root>/images/{org_id}/{image_id}/{version}`.

The path layout is the spec's (§8.2). Files only ever appear complete: they are written to a temporary
name in the same directory and renamed into place; a failed write removes its temporary file. Ids
reaching a path are validated names (`BlobRef`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from plasmavmc.errors import ImageNotFound
from plasmavmc.images.store_base import BlobRef, ImageStore, file_chunks, sha256_file

__all__ = ["LocalImageStore", "sha256_file"]


class LocalImageStore(ImageStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, org_id: str, image_id: str, version: str) -> Path:
        return self.root / BlobRef(org_id, image_id, version).key

    def _path(self, ref: BlobRef) -> Path:
        return self.root / ref.key

    def partial_files(self) -> list[Path]:
        """Temporary files of writes in progress (or of a crashed process)."""
        return sorted((self.root / "images").glob("*/*/.*.partial"))

    async def write(self, ref: BlobRef, chunks: AsyncIterator[bytes]) -> int:
        dest = self._path(ref)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{id(chunks):x}.partial")
        size = 0
        try:
            with tmp.open("wb") as out:
                async for chunk in chunks:
                    await asyncio.to_thread(out.write, chunk)
                    size += len(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    async def put_file(self, ref: BlobRef, path: Path) -> int:
        dest = self._path(ref)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{id(path):x}.partial")

        def copy() -> int:
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(path, tmp)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return dest.stat().st_size

        return await asyncio.to_thread(copy)

    async def read(self, ref: BlobRef, offset: int = 0) -> AsyncIterator[bytes]:
        path = self._path(ref)
        if not path.is_file():
            raise ImageNotFound(f"image {ref.image_id!r} has no data in the image store")
        async for chunk in file_chunks(path, offset):
            yield chunk

    async def size(self, ref: BlobRef) -> int | None:
        try:
            return self._path(ref).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, ref: BlobRef) -> None:
        path = self._path(ref)
        path.unlink(missing_ok=True)
        for parent in (path.parent, path.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break

    async def import_file(self, src: Path, org_id: str, image_id: str, version: str) -> Path:
        """Copy `src` into the store (atomically); a file already there is kept."""
        ref = BlobRef(org_id, image_id, version)
        if await self.size(ref) is None:
            await self.put_file(ref, src)
        return self._path(ref)
