"""ImageService methods of `PlasmaClient`: what an org may boot from, and moving image bytes in and out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from plasmavmc.client.base import ClientBase
from plasmavmc.types.image import Image, ImageFormat, OsType, Visibility
from plasmavmc.v1 import image_pb2
from plasmavmc.wire.convert import enum_to_proto, from_proto


def _enum(value: Any, descriptor: Any) -> Any:
    """A proto enum number (typed Any: the generated stubs type enum fields as their own classes)."""
    return enum_to_proto(value, descriptor)


class ImageMixin(ClientBase):
    """`plasmavmc.v1.ImageService`: every RPC of spec §5.1."""

    async def list_images(self, org_id: str) -> list[Image]:
        """Every image `org_id` can see (its own, shared with it, public), following the page tokens."""
        result: list[Image] = []
        token = ""
        while True:
            request = image_pb2.ListImagesRequest(org_id=org_id, page_token=token)
            response = await self._unary(self._image_stub.ListImages, request)
            result.extend(from_proto(Image, m) for m in response.images)
            token = str(response.next_page_token)
            if not token:
                return result

    async def get_image(self, org_id: str, image_id: str) -> Image:
        """One image, as `org_id` may see it."""
        request = image_pb2.GetImageRequest(org_id=org_id, image_id=image_id)
        return from_proto(Image, await self._unary(self._image_stub.GetImage, request))

    async def delete_image(self, org_id: str, image_id: str) -> None:
        """Delete an image owned by `org_id`."""
        request = image_pb2.DeleteImageRequest(org_id=org_id, image_id=image_id)
        await self._unary(self._image_stub.DeleteImage, request)

    async def download_image(self, org_id: str, image_id: str, offset: int = 0) -> AsyncIterator[bytes]:
        """The image's bytes in chunks, from `offset` on (to resume an interrupted download)."""
        request = image_pb2.DownloadImageRequest(org_id=org_id, image_id=image_id, offset=offset)
        async for message in self._stream(self._image_stub.DownloadImage, request):
            yield bytes(message.chunk)

    async def upload_image(
        self,
        org_id: str,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        visibility: Visibility = Visibility.PRIVATE,
        shared_orgs: tuple[str, ...] = (),
        checksum: str = "",
        image_format: ImageFormat | None = None,
        os_type: OsType | None = None,
        min_disk_gib: int = 0,
        min_memory_mib: int = 0,
        metadata: dict[str, str] | None = None,
    ) -> Image:
        """Create an image from streamed bytes (UploadImage). The server computes the sha256 and detects
        the format from the content; `checksum`/`image_format`, when given, must match what it finds."""
        create = image_pb2.CreateImageRequest(
            name=name,
            org_id=org_id,
            visibility=_enum(visibility, image_pb2.Visibility.DESCRIPTOR),
            shared_orgs=list(shared_orgs),
            checksum=checksum,
            min_disk_gib=min_disk_gib,
            min_memory_mib=min_memory_mib,
            metadata=metadata or {},
        )
        if image_format is not None:
            create.format = _enum(image_format, image_pb2.ImageFormat.DESCRIPTOR)
        if os_type is not None:
            create.os_type = _enum(os_type, image_pb2.OsType.DESCRIPTOR)

        async def requests() -> AsyncIterator[Any]:
            yield image_pb2.UploadImageRequest(metadata=create)
            async for chunk in chunks:
                yield image_pb2.UploadImageRequest(chunk=chunk)

        index, upload = self._bind(self._image_stub.UploadImage)  # a stream of chunks: sent once, no fail-over
        try:
            reply = await upload(requests(), metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, index) from None
        self._endpoints.answered = self._endpoints.addrs[index]
        return from_proto(Image, reply)

    async def import_image(self, org_id: str, name: str, url: str, *, checksum: str = "") -> Image:
        """CreateImage from a URL: returns the PENDING record; poll `get_image` for AVAILABLE or ERROR."""
        request = image_pb2.CreateImageRequest(
            name=name,
            org_id=org_id,
            checksum=checksum,
            source=image_pb2.ImageSource(url=image_pb2.UrlSource(url=url)),
        )
        return from_proto(Image, await self._unary(self._image_stub.CreateImage, request))

    async def create_image_from_vm(
        self,
        org_id: str,
        name: str,
        vm_id: str,
        disk_id: str,
        *,
        visibility: Visibility = Visibility.PRIVATE,
        shared_orgs: tuple[str, ...] = (),
        metadata: dict[str, str] | None = None,
    ) -> Image:
        """CreateImage from disk `disk_id` of the stopped VM `vm_id`: returns the PENDING record; poll
        `get_image` for AVAILABLE or ERROR. The image inherits the boot metadata of the disk's image."""
        request = image_pb2.CreateImageRequest(
            name=name,
            org_id=org_id,
            visibility=_enum(visibility, image_pb2.Visibility.DESCRIPTOR),
            shared_orgs=list(shared_orgs),
            metadata=metadata or {},
            source=image_pb2.ImageSource(snapshot=image_pb2.SnapshotSource(vm_id=vm_id, disk_id=disk_id)),
        )
        return from_proto(Image, await self._unary(self._image_stub.CreateImage, request))

    async def convert_image(self, org_id: str, image_id: str, target: ImageFormat, name: str = "") -> Image:
        """A new image of `org_id` with the image's disk converted to `target`."""
        request = image_pb2.ConvertImageRequest(
            org_id=org_id,
            image_id=image_id,
            name=name,
            target_format=_enum(target, image_pb2.ImageFormat.DESCRIPTOR),
        )
        return from_proto(Image, await self._unary(self._image_stub.ConvertImage, request))

    async def update_image(
        self,
        org_id: str,
        image_id: str,
        *,
        name: str | None = None,
        visibility: Visibility | None = None,
        shared_orgs: tuple[str, ...] = (),
        metadata: dict[str, str] | None = None,
    ) -> Image:
        """Rename, re-share or replace the metadata of an image `org_id` owns."""
        request = image_pb2.UpdateImageRequest(
            org_id=org_id,
            image_id=image_id,
            shared_orgs=list(shared_orgs),
            metadata=metadata or {},
            update_metadata=metadata is not None,
        )
        if name is not None:
            request.name = name
        if visibility is not None:
            request.visibility = _enum(visibility, image_pb2.Visibility.DESCRIPTOR)
        return from_proto(Image, await self._unary(self._image_stub.UpdateImage, request))
