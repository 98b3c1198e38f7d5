"""The node-local image cache: pull-through from the control plane's `DownloadImage`, verified.

An image lands at `<cache>/<image_id>/<sha256>` only complete and with the sha256 its record declares:
it is streamed to a temporary file in the same directory, hashed on the way, and renamed into place.
Concurrent requests for the same image wait for one download.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import grpc

from plasmavmc import validation
from plasmavmc.api.status import from_rpc_error
from plasmavmc.errors import HypervisorError
from plasmavmc.types.image import Image
from plasmavmc.v1 import image_pb2, image_pb2_grpc


class ImageCache:
    def __init__(self, root: Path, channel: grpc.aio.Channel) -> None:
        self.root = root
        self._stub = image_pb2_grpc.ImageServiceStub(channel)
        self._locks: dict[str, asyncio.Lock] = {}

    def path_of(self, image: Image) -> Path:
        validation.name(image.id, "image.id")
        if len(image.checksum) != 64 or not all(c in "0123456789abcdef" for c in image.checksum):
            raise HypervisorError(f"image {image.id} has no valid sha256 checksum")
        return self.root / image.id / image.checksum

    async def fetch(self, image: Image, org_id: str) -> Path:
        path = self.path_of(image)
        lock = self._locks.setdefault(str(path), asyncio.Lock())
        async with lock:
            if not path.exists():
                await self._download(image, org_id, path)
        return path

    async def _download(self, image: Image, org_id: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        digest = hashlib.sha256()
        request = image_pb2.DownloadImageRequest(org_id=org_id, image_id=image.id)
        try:
            with tmp.open("wb") as out:
                async for part in self._stub.DownloadImage(request):
                    digest.update(part.chunk)
                    await asyncio.to_thread(out.write, part.chunk)
            if digest.hexdigest() != image.checksum:
                raise HypervisorError(f"image {image.id}: downloaded bytes do not match sha256 {image.checksum[:12]}")
            os.replace(tmp, path)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            tmp.unlink(missing_ok=True)
