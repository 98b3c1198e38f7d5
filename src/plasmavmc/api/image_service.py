"""`plasmavmc.v1.ImageService`: validate -> `core.images.ImageService` -> convert.

Every RPC of spec §5.1. UploadImage is a client stream whose first message is the CreateImageRequest
and the rest are byte chunks; if the stream ends early or breaks, the image is removed again (see
`core/images.py`). DownloadImage streams from an offset, so an interrupted download can resume.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from plasmavmc import validation
from plasmavmc.api import caller
from plasmavmc.core.context import Core
from plasmavmc.core.images import ImageService
from plasmavmc.core.vms.disks import VmDisks, vm_missing
from plasmavmc.errors import InvalidArgument, PermissionDenied
from plasmavmc.images.ingest import NewImage
from plasmavmc.types.image import Image, ImageFormat, Visibility
from plasmavmc.v1 import image_pb2, image_pb2_grpc, types_pb2
from plasmavmc.wire.convert import enum_from_proto, from_proto, to_proto
from plasmavmc.wire.edge import ServicerContext, stream, unary

Ctx = ServicerContext


async def _chunks(requests: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    async for part in requests:
        if part.WhichOneof("part") != "chunk":
            raise InvalidArgument("metadata", "only the first message of an upload may carry metadata")
        yield bytes(part.chunk)


def _change(request: Any) -> Any:
    """The update a UpdateImageRequest asks for, as a function of the current record."""
    name = request.name if request.HasField("name") else None
    if name is not None:
        validation.name(name, "name")
    visibility = None
    if request.HasField("visibility"):
        visibility = enum_from_proto(Visibility, request.visibility, image_pb2.Visibility.DESCRIPTOR)
    shared = tuple(request.shared_orgs)
    metadata = dict(request.metadata) if request.update_metadata else None
    if metadata is not None:
        validation.image_metadata(metadata)

    def apply(image: Image) -> Image:
        new_visibility = visibility or image.visibility
        return Image(
            **{
                **image.__dict__,
                "name": name or image.name,
                "visibility": new_visibility,
                "shared_orgs": shared if (shared or visibility) else image.shared_orgs,
                "metadata": image.metadata if metadata is None else metadata,
            }
        )

    return apply


class ImageServicer(image_pb2_grpc.ImageServiceServicer):
    def __init__(self, core: Core, images: ImageService) -> None:
        self.core = core
        self.images = images
        self.vm_disks = VmDisks(core)

    async def _references(self, org_id: str, publish: bool, metadata: Any, source: Any = None) -> None:
        """Authorize, as the caller, what a request names besides its own scope: publishing, the boot
        images of `metadata` (visible to the org, else IMAGE_NOT_FOUND for that field) and the VM of a
        snapshot source (in *its* project: NOT_FOUND if the caller cannot see it there)."""
        validation.name(org_id, "org_id")
        if publish:
            await caller.require("plasmavmc:images:publish", org_id, "", lambda: PermissionDenied("publish"))
        for key in ("kernel_id", "ramdisk_id"):
            if metadata.get(key):
                await self.core.catalog.get(org_id, metadata[key], field=f"metadata.{key}")
        if source is not None and source.WhichOneof("kind") == "snapshot":
            vm = await self.vm_disks.locate(org_id, source.snapshot.vm_id)
            await caller.require("plasmavmc:vms:export", vm.org_id, vm.project_id,
                                 lambda: vm_missing(org_id, source.snapshot.vm_id))

    async def _check_new(self, request: Any) -> None:
        await self._references(request.org_id, request.visibility == image_pb2.VISIBILITY_PUBLIC,
                               request.metadata, request.source)

    @unary
    async def GetImage(self, request: image_pb2.GetImageRequest, context: Ctx) -> Any:
        image = await self.images.get(request.org_id, request.image_id)
        return to_proto(image, image_pb2.Image())

    @unary
    async def ListImages(self, request: image_pb2.ListImagesRequest, context: Ctx) -> Any:
        images, token = await self.images.list_page(request.org_id, request.page_size, request.page_token)
        return image_pb2.ListImagesResponse(
            images=[to_proto(i, image_pb2.Image()) for i in images], next_page_token=token
        )

    @unary
    async def CreateImage(self, request: image_pb2.CreateImageRequest, context: Ctx) -> Any:
        await self._check_new(request)
        image = await self.images.create(from_proto(NewImage, request))
        return to_proto(image, image_pb2.Image())

    @unary
    async def UploadImage(self, request_iterator: AsyncIterator[Any], context: Ctx) -> Any:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("part") != "metadata":
            raise InvalidArgument("metadata", "the first message of an upload must be the CreateImageRequest")
        await self._check_new(first.metadata)
        new = from_proto(NewImage, first.metadata)
        image = await self.images.upload(new, _chunks(request_iterator))
        return to_proto(image, image_pb2.Image())

    @unary
    async def UpdateImage(self, request: image_pb2.UpdateImageRequest, context: Ctx) -> Any:
        publish = request.HasField("visibility") and request.visibility == image_pb2.VISIBILITY_PUBLIC
        await self._references(request.org_id, publish, request.metadata if request.update_metadata else {})
        image = await self.images.update(request.org_id, request.image_id, _change(request))
        return to_proto(image, image_pb2.Image())

    @unary
    async def DeleteImage(self, request: image_pb2.DeleteImageRequest, context: Ctx) -> Any:
        await self.images.delete(request.org_id, request.image_id)
        return types_pb2.Empty()

    @stream
    async def DownloadImage(self, request: image_pb2.DownloadImageRequest, context: Ctx) -> AsyncIterator[Any]:
        image = await self.images.get(request.org_id, request.image_id)
        async for offset, chunk in self.images.download(request.org_id, request.image_id, request.offset):
            yield image_pb2.DownloadImageResponse(chunk=chunk, offset=offset, total_size=image.size_bytes)

    @unary
    async def ConvertImage(self, request: image_pb2.ConvertImageRequest, context: Ctx) -> Any:
        target = enum_from_proto(ImageFormat, request.target_format, image_pb2.ImageFormat.DESCRIPTOR)
        image = await self.images.convert(request.org_id, request.image_id, target, request.name)
        return to_proto(image, image_pb2.Image())
