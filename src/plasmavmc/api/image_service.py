"""`plasmavmc.v1.ImageService`: reading the catalog and downloading image bytes work now; creating,
uploading, updating, converting and deleting images land with the images issue (UNIMPLEMENTED)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from plasmavmc import validation
from plasmavmc.api.convert import to_proto
from plasmavmc.api.edge import ServicerContext, stream, unary, unimplemented
from plasmavmc.core.context import Core
from plasmavmc.v1 import image_pb2, image_pb2_grpc

Ctx = ServicerContext
IMAGES = "image import, upload, update, conversion and deletion (lands with the images issue)"


class ImageServicer(image_pb2_grpc.ImageServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core

    @unary
    async def GetImage(self, request: image_pb2.GetImageRequest, context: Ctx) -> Any:
        validation.name(request.org_id, "org_id")
        image = await self.core.catalog.get(request.org_id, request.image_id)
        return to_proto(image, image_pb2.Image())

    @unary
    async def ListImages(self, request: image_pb2.ListImagesRequest, context: Ctx) -> Any:
        validation.name(request.org_id, "org_id")
        images = await self.core.catalog.list(request.org_id)
        return image_pb2.ListImagesResponse(images=[to_proto(i, image_pb2.Image()) for i in images])

    @stream
    async def DownloadImage(self, request: image_pb2.DownloadImageRequest, context: Ctx) -> AsyncIterator[Any]:
        validation.name(request.org_id, "org_id")
        image = await self.core.catalog.get(request.org_id, request.image_id)
        async for offset, chunk in self.core.image_files.read(image, request.offset):
            yield image_pb2.DownloadImageResponse(chunk=chunk, offset=offset, total_size=image.size_bytes)

    CreateImage = unimplemented(IMAGES)
    UpdateImage = unimplemented(IMAGES)
    DeleteImage = unimplemented(IMAGES)
    UploadImage = unimplemented(IMAGES)
    ConvertImage = unimplemented(IMAGES)
