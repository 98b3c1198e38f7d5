"""ImageService methods of `PlasmaClient`: what an org may boot from."""

from __future__ import annotations

from collections.abc import AsyncIterator

from plasmavmc.api.convert import from_proto
from plasmavmc.client.base import ClientBase
from plasmavmc.types.image import Image
from plasmavmc.v1 import image_pb2


class ImageMixin(ClientBase):
    """`plasmavmc.v1.ImageService` (the read side, deletion and download)."""

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
