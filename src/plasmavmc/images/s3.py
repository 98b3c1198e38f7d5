"""The S3 image store (spec §8.2: LightningSTOR, or any S3-compatible object store): objects
`images/{org_id}/{image_id}/{version}` in one bucket, through boto3.

boto3 is synchronous, so every call runs in a worker thread (`asyncio.to_thread`). A write buffers the
stream into parts of `PART_SIZE`: a stream shorter than one part is one `PutObject`, a longer one a
multipart upload, which S3 makes visible only on `CompleteMultipartUpload` — and which is aborted if
the stream fails, so an interrupted upload leaves neither an object nor stored parts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from plasmavmc.errors import ImageNotFound, StoreError
from plasmavmc.images.store_base import CHUNK, BlobRef, ImageStore

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB (except the last)


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    bucket: str
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ImageStore(ImageStore):
    def __init__(self, settings: S3Settings) -> None:
        self.bucket = settings.bucket
        self._s3: Any = boto3.client(
            "s3",
            endpoint_url=settings.endpoint,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            region_name=settings.region or "us-east-1",
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._s3, method), **kwargs)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise ImageNotFound(f"no object {kwargs.get('Key')!r} in bucket {self.bucket}") from None
            raise StoreError(f"S3 {method} failed: {exc}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreError(f"S3 {method} failed: {exc}") from exc

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        try:
            await self._call("head_bucket", Bucket=self.bucket)
        except (ImageNotFound, StoreError):
            await self._call("create_bucket", Bucket=self.bucket)

    async def write(self, ref: BlobRef, chunks: AsyncIterator[bytes]) -> int:
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= PART_SIZE:
                    if upload_id is None:
                        created = await self._call("create_multipart_upload", Bucket=self.bucket, Key=ref.key)
                        upload_id = str(created["UploadId"])
                    parts.append(await self._part(ref, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:
                await self._call("put_object", Bucket=self.bucket, Key=ref.key, Body=bytes(buffer))
                return size
            if buffer:
                parts.append(await self._part(ref, upload_id, len(parts) + 1, bytes(buffer)))
            await self._call(
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=ref.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            upload_id = None
            return size
        finally:
            if upload_id is not None:
                await asyncio.shield(self._abort(ref, upload_id))

    async def _part(self, ref: BlobRef, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        done = await self._call(
            "upload_part", Bucket=self.bucket, Key=ref.key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"ETag": done["ETag"], "PartNumber": number}

    async def _abort(self, ref: BlobRef, upload_id: str) -> None:
        # if even the abort fails, the bucket's lifecycle rule for stale uploads removes the parts
        with contextlib.suppress(StoreError):
            await self._call("abort_multipart_upload", Bucket=self.bucket, Key=ref.key, UploadId=upload_id)

    async def open_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        found = await self._call("list_multipart_uploads", Bucket=self.bucket)
        return [str(u["Key"]) for u in found.get("Uploads", [])]

    async def read(self, ref: BlobRef, offset: int = 0) -> AsyncIterator[bytes]:
        size = await self.size(ref)
        if size is None:
            raise ImageNotFound(f"image {ref.image_id!r} has no data in the image store")
        if offset >= size:
            return
        got = await self._call("get_object", Bucket=self.bucket, Key=ref.key, Range=f"bytes={offset}-")
        body = got["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    async def size(self, ref: BlobRef) -> int | None:
        try:
            head = await self._call("head_object", Bucket=self.bucket, Key=ref.key)
        except ImageNotFound:
            return None
        return int(head["ContentLength"])

    async def delete(self, ref: BlobRef) -> None:
        await self._call("delete_object", Bucket=self.bucket, Key=ref.key)

    async def close(self) -> None:
        self._s3.close()
