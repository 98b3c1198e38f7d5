"""The `ImageStore` contract, the SAME tests over every backend: the local directory and S3 (a real
SeaweedFS started by the `seaweedfs` fixture).

Write/read round trips (small and multipart-sized), reads from an offset, replacing, deleting, and the
all-or-nothing rule: a stream that fails part-way leaves no object and no partial data behind.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from plasmavmc.errors import ImageNotFound
from plasmavmc.images.local import LocalImageStore
from plasmavmc.images.s3 import PART_SIZE, S3ImageStore, S3Settings
from plasmavmc.images.store_base import BlobRef, ImageStore
from tests.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFs, seaweedfs

__all__ = ["seaweedfs"]


@dataclass
class Backend:
    store: ImageStore
    leftovers: Callable[[], Awaitable[list[str]]]  # partial files / open multipart uploads


@pytest.fixture(params=["local", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        local = LocalImageStore(tmp_path)

        async def local_leftovers() -> list[str]:
            return [str(p) for p in local.partial_files()]

        yield Backend(local, local_leftovers)
        return
    server: SeaweedFs = request.getfixturevalue("seaweedfs")
    s3 = S3ImageStore(S3Settings(server.endpoint, BUCKET, ACCESS_KEY, SECRET_KEY))
    await s3.ensure_bucket()

    async def s3_leftovers() -> list[str]:
        return await s3.open_uploads()

    yield Backend(s3, s3_leftovers)
    await s3.close()


def ref() -> BlobRef:
    return BlobRef(f"org-{uuid.uuid4().hex[:8]}", str(uuid.uuid4()), "0123456789abcdef")


async def chunks_of(data: bytes, size: int = 1024 * 1024, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        if fail_after is not None and i >= fail_after:
            raise ConnectionResetError("client went away")
        yield data[i : i + size]


async def read_all(store: ImageStore, r: BlobRef, offset: int = 0) -> bytes:
    return b"".join([c async for c in store.read(r, offset)])


async def test_small_write_read_round_trip(backend: Backend) -> None:
    r, data = ref(), os.urandom(300_000)
    assert await backend.store.write(r, chunks_of(data, 70_000)) == len(data)
    assert await backend.store.size(r) == len(data)
    assert await read_all(backend.store, r) == data


async def test_multipart_sized_write_round_trip(backend: Backend) -> None:
    r, data = ref(), os.urandom(2 * PART_SIZE + 12345)
    await backend.store.write(r, chunks_of(data))
    got = await read_all(backend.store, r)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert await backend.leftovers() == []


async def test_read_from_offset(backend: Backend) -> None:
    r, data = ref(), os.urandom(100_000)
    await backend.store.write(r, chunks_of(data))
    assert await read_all(backend.store, r, 99_000) == data[99_000:]
    assert await read_all(backend.store, r, len(data)) == b""


async def test_write_replaces(backend: Backend) -> None:
    r = ref()
    await backend.store.write(r, chunks_of(b"first version"))
    await backend.store.write(r, chunks_of(b"second"))
    assert await read_all(backend.store, r) == b"second"


async def test_interrupted_write_leaves_nothing(backend: Backend) -> None:
    r, data = ref(), os.urandom(3 * PART_SIZE)
    with pytest.raises(ConnectionResetError):
        await backend.store.write(r, chunks_of(data, fail_after=2 * PART_SIZE))
    assert await backend.store.size(r) is None
    assert await backend.leftovers() == []
    with pytest.raises(ImageNotFound):
        await read_all(backend.store, r)


async def test_interrupted_write_keeps_previous_version(backend: Backend) -> None:
    r = ref()
    await backend.store.write(r, chunks_of(b"complete"))
    with pytest.raises(ConnectionResetError):
        await backend.store.write(r, chunks_of(os.urandom(2 * PART_SIZE), fail_after=PART_SIZE))
    assert await read_all(backend.store, r) == b"complete"


async def test_delete(backend: Backend) -> None:
    r = ref()
    await backend.store.write(r, chunks_of(b"bytes"))
    await backend.store.delete(r)
    assert await backend.store.size(r) is None
    await backend.store.delete(r)  # absent: no error
    with pytest.raises(ImageNotFound):
        await read_all(backend.store, r)


async def test_put_and_get_file(backend: Backend, tmp_path: Path) -> None:
    r, data = ref(), os.urandom(1_500_000)
    src, dest = tmp_path / "src.img", tmp_path / "dest.img"
    src.write_bytes(data)
    assert await backend.store.put_file(r, src) == len(data)
    await backend.store.get_file(r, dest)
    assert dest.read_bytes() == data
