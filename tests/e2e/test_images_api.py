"""ImageService end to end, the SAME tests over both image-store backends: a real server + agent with
the local directory store, and with the S3 store on a real SeaweedFS.

Upload and download compare bytes; an interrupted upload leaves no image and no partial file; bytes
are judged by content (a qcow2 with a backing file is refused, a wrong checksum or format claim too);
conversion walks raw -> qcow2 -> vmdk -> vhd -> raw and keeps every byte; a VM boots (real QEMU) from a
converted image, and the image cannot be deleted while that VM exists; URL imports end AVAILABLE or
ERROR with the reason; visibility and pagination hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import (
    ErrorCode,
    ImageNotFound,
    InvalidArgument,
    InvalidState,
    PermissionDenied,
    QuotaExceeded,
)
from plasmavmc.images.s3 import S3ImageStore, S3Settings
from plasmavmc.types.image import ImageFormat, ImageStatus, Visibility
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, MemorySpec, VmSpec
from plasmavmc.v1 import image_pb2
from tests.conftest import Cluster, Proc, kill_leftover_qemu, needs_qemu, write_configs
from tests.e2e.helpers import ORG, PROJECT, console_until, until
from tests.ports import free_port
from tests.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFs, seaweedfs

__all__ = ["seaweedfs"]
pytestmark = [needs_qemu]
OTHER = "org-img-other"
FILES_HOST = "127.0.0.3"


def start_image_cluster(root: Path, guest: Path, s3: SeaweedFs | None) -> Cluster:
    server_cfg, agent_cfg, api, http, _ = write_configs(root, guest, "node-img")
    if s3 is not None:
        text = server_cfg.read_text().replace(
            '[image_store]\nbackend = "local"\n',
            f'[image_store]\nbackend = "s3"\nendpoint = "{s3.endpoint}"\nbucket = "{BUCKET}"\n'
            f'access_key = "{ACCESS_KEY}"\nsecret_key = "{SECRET_KEY}"\n',
        )
        assert 'backend = "s3"' in text
        server_cfg.write_text(text)
    # URL imports may reach only this loopback address (the default refuses every loopback address)
    server_cfg.write_text(server_cfg.read_text() + f'[images]\nurl_allow_cidrs = ["{FILES_HOST}/32"]\n')
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(server_cfg)], root / "server.log")
    agent = Proc([sys.executable, "-m", "plasmavmc.agent.main", "-c", str(agent_cfg)], root / "agent.log")
    server.start()
    agent.start()
    cluster = Cluster(root, api, http, server, agent, "node-img")
    try:
        cluster.wait_ready()
    except BaseException:
        agent.stop()
        server.stop()
        raise
    return cluster


@dataclass
class ImgCluster:
    cluster: Cluster
    s3: SeaweedFs | None


@pytest.fixture(scope="module", params=["local", "s3"])
def img_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, guest_dir: Path
) -> Iterator[ImgCluster]:
    s3: SeaweedFs | None = request.getfixturevalue("seaweedfs") if request.param == "s3" else None
    root = tmp_path_factory.mktemp(f"images-{request.param}")
    c = start_image_cluster(root, guest_dir, s3)
    try:
        yield ImgCluster(c, s3)
    finally:
        c.agent.stop()
        c.server.stop()
        kill_leftover_qemu(root)


@pytest.fixture(scope="module")
async def images(img_cluster: ImgCluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(img_cluster.cluster.api) as c:
        yield c


async def chunks_of(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def download(client: PlasmaClient, org: str, image_id: str) -> bytes:
    return b"".join([c async for c in client.download_image(org, image_id)])


async def stored_leftovers(c: ImgCluster) -> list[str]:
    """Partial files in the server's staging dir and local store, and open multipart uploads on S3."""
    found = [str(p) for p in (c.cluster.root / "images").rglob("*") if p.is_file() and p.name.startswith(".")]
    s3 = c.s3
    if s3 is not None:
        store = S3ImageStore(S3Settings(s3.endpoint, BUCKET, ACCESS_KEY, SECRET_KEY))
        found += await store.open_uploads()
        await store.close()
    return found


def raw_disk(size: int = 4 * 1024 * 1024) -> bytes:
    return os.urandom(size)


async def test_upload_download_round_trip(images: PlasmaClient) -> None:
    data = raw_disk()
    image = await images.upload_image(ORG, "roundtrip", chunks_of(data))
    assert image.status == ImageStatus.AVAILABLE
    assert image.format == ImageFormat.RAW
    assert image.size_bytes == len(data)
    assert image.checksum == hashlib.sha256(data).hexdigest()
    assert image.org_id == ORG and image.visibility == Visibility.PRIVATE
    assert await download(images, ORG, image.id) == data
    tail = b"".join([c async for c in images.download_image(ORG, image.id, offset=len(data) - 1000)])
    assert tail == data[-1000:]
    assert image.id in {i.id for i in await images.list_images(ORG)}
    with pytest.raises(ImageNotFound):
        await images.get_image(OTHER, image.id)


async def test_interrupted_upload_leaves_no_image_and_no_partial_file(
    images: PlasmaClient, img_cluster: ImgCluster
) -> None:
    sent = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(256 * 1024)
        sent.set()
        await asyncio.Event().wait()  # the client never finishes: it is cancelled below
        yield b""

    upload = asyncio.create_task(images.upload_image(ORG, "interrupted", stalled()))
    await asyncio.wait_for(sent.wait(), 10)

    async def uploading() -> bool:
        return any(i.name == "interrupted" and i.status == ImageStatus.UPLOADING for i in await images.list_images(ORG))

    await until(uploading, "the upload's record shows UPLOADING")
    upload.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await upload

    async def gone() -> bool:
        names = {i.name for i in await images.list_images(ORG)}
        return "interrupted" not in names and not await stored_leftovers(img_cluster)

    await until(gone, "no image and no partial file after the interrupted upload")


async def test_qcow2_with_backing_file_is_refused(images: PlasmaClient, tmp_path: Path) -> None:
    evil = tmp_path / "evil.qcow2"
    await asyncio.to_thread(
        subprocess.run,
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", str(evil), "1M"],
        check=True,
    )
    with pytest.raises(InvalidArgument, match="backing file") as err:
        await images.upload_image(ORG, "evil", chunks_of(evil.read_bytes()))
    assert err.value.code == ErrorCode.INVALID_ARGUMENT and err.value.field == "chunk"
    assert "evil" not in {i.name for i in await images.list_images(ORG)}


async def test_declared_checksum_and_format_must_match_the_content(images: PlasmaClient) -> None:
    data = raw_disk(1024 * 1024)
    with pytest.raises(InvalidArgument) as err:
        await images.upload_image(ORG, "badsum", chunks_of(data), checksum="0" * 64)
    assert (err.value.code, err.value.field) == (ErrorCode.INVALID_ARGUMENT, "checksum")
    with pytest.raises(InvalidArgument) as err:
        await images.upload_image(ORG, "badfmt", chunks_of(data), image_format=ImageFormat.QCOW2)
    assert (err.value.code, err.value.field) == (ErrorCode.INVALID_ARGUMENT, "format")
    names = {i.name for i in await images.list_images(ORG)}
    assert not names & {"badsum", "badfmt"}


async def test_convert_through_all_four_formats_keeps_the_bytes(images: PlasmaClient) -> None:
    data = raw_disk()
    current = await images.upload_image(ORG, "conv-src", chunks_of(data))
    for target in (ImageFormat.QCOW2, ImageFormat.VMDK, ImageFormat.VHD, ImageFormat.RAW):
        converted = await images.convert_image(ORG, current.id, target)
        assert converted.status == ImageStatus.AVAILABLE, converted.metadata
        assert converted.format == target
        assert converted.checksum == hashlib.sha256(await download(images, ORG, converted.id)).hexdigest()
        current = converted
    assert await download(images, ORG, current.id) == data
    with pytest.raises(InvalidArgument) as err:
        await images.convert_image(ORG, current.id, ImageFormat.RAW)
    assert (err.value.code, err.value.field) == (ErrorCode.INVALID_ARGUMENT, "target_format")


async def test_vm_boots_from_converted_image_which_cannot_be_deleted_meanwhile(images: PlasmaClient) -> None:
    qcow2 = await images.convert_image(ORG, "plasmavmc-tiny", ImageFormat.QCOW2, name="tiny-qcow2")
    assert qcow2.format == ImageFormat.QCOW2 and qcow2.metadata["kernel_id"] == "plasmavmc-tiny-kernel"
    spec = VmSpec(
        cpu=CpuSpec(vcpus=1),
        memory=MemorySpec(size_mib=256),
        disks=(DiskSpec(id="root", source=DiskSource(image_id=qcow2.id), size_gib=1),),
    )
    vm = await images.create_vm("from-qcow2", ORG, PROJECT, spec)
    try:
        with pytest.raises(InvalidState, match="in use"):
            await images.delete_image(ORG, qcow2.id)
        await images.start_vm(ORG, PROJECT, vm.id)
        await console_until(images, vm.id, rf"PLASMAVMC-READY name=from-qcow2 id={vm.id}")
    finally:
        await images.delete_vm(ORG, PROJECT, vm.id, force=True)
    await images.delete_image(ORG, qcow2.id)
    with pytest.raises(ImageNotFound):
        await images.get_image(ORG, qcow2.id)


async def test_delete_removes_record_and_bytes(images: PlasmaClient, img_cluster: ImgCluster) -> None:
    image = await images.upload_image(ORG, "to-delete", chunks_of(raw_disk(1024 * 1024)))
    await images.update_image(ORG, image.id, visibility=Visibility.SHARED, shared_orgs=(OTHER,))
    with pytest.raises(PermissionDenied):
        await images.delete_image(OTHER, image.id)
    await images.delete_image(ORG, image.id)
    with pytest.raises(ImageNotFound):
        await images.get_image(ORG, image.id)
    with pytest.raises(ImageNotFound):
        await download(images, ORG, image.id)
    if img_cluster.s3 is None:
        assert not list((img_cluster.cluster.root / "images" / "images" / ORG).glob(f"{image.id}/*"))
    else:
        store = S3ImageStore(S3Settings(img_cluster.s3.endpoint, BUCKET, ACCESS_KEY, SECRET_KEY))
        listed = await store._call("list_objects_v2", Bucket=BUCKET, Prefix=f"images/{ORG}/{image.id}/")
        await store.close()
        assert listed.get("KeyCount", 0) == 0


async def test_update_sharing_and_public_rule(images: PlasmaClient) -> None:
    image = await images.upload_image(ORG, "shared-one", chunks_of(raw_disk(512 * 1024)))
    renamed = await images.update_image(
        ORG,
        image.id,
        name="shared-two",
        visibility=Visibility.SHARED,
        shared_orgs=(OTHER,),
        metadata={"purpose": "test"},
    )
    assert renamed.name == "shared-two" and renamed.metadata == {"purpose": "test"}
    assert (await images.get_image(OTHER, image.id)).name == "shared-two"
    with pytest.raises(PermissionDenied):
        await images.update_image(OTHER, image.id, name="stolen")
    with pytest.raises(PermissionDenied):
        await images.update_image(ORG, image.id, visibility=Visibility.PUBLIC)
    await images.update_image(ORG, image.id, visibility=Visibility.PRIVATE)
    with pytest.raises(ImageNotFound):
        await images.get_image(OTHER, image.id)


async def test_list_is_paginated(images: PlasmaClient) -> None:
    org = "org-pages"
    made = {(await images.upload_image(org, f"page-{i}", chunks_of(raw_disk(4096)))).id for i in range(3)}
    seen: list[str] = []
    token = ""
    while True:
        reply = await images._unary(
            images._image_stub.ListImages, image_pb2.ListImagesRequest(org_id=org, page_size=2, page_token=token)
        )
        assert len(reply.images) <= 2
        seen += [i.id for i in reply.images if i.org_id == org]
        token = reply.next_page_token
        if not token:
            break
    assert set(seen) == made and len(seen) == len(made)


async def test_max_images_counts_every_image_of_the_org(images: PlasmaClient) -> None:
    org = "org-img-quota"
    await images.set_quota(org, "", ResourceLimits(max_images=2))
    first = await images.upload_image(org, "q-1", chunks_of(raw_disk(4096)))
    with pytest.raises(InvalidArgument):  # refused after its record was written: the count comes back
        await images.upload_image(org, "q-bad", chunks_of(raw_disk(4096)), checksum="0" * 64)
    await images.upload_image(org, "q-2", chunks_of(raw_disk(4096)))
    with pytest.raises(QuotaExceeded, match="max_images"):
        await images.upload_image(org, "q-3", chunks_of(raw_disk(4096)))
    assert sorted(i.name for i in await images.list_images(org) if i.org_id == org) == ["q-1", "q-2"]
    assert (await images.get_quota(org)).usage.images == 2
    await images.delete_image(org, first.id)
    assert (await images.get_quota(org)).usage.images == 1
    await images.upload_image(org, "q-3", chunks_of(raw_disk(4096)))
    assert (await images.get_quota(org)).usage.images == 2


@pytest.fixture
async def http_files(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    app = web.Application()
    app.router.add_static("/files/", tmp_path)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, FILES_HOST, port)
    await site.start()
    yield f"http://{FILES_HOST}:{port}/files", tmp_path
    await runner.cleanup()


async def test_url_import_becomes_available_or_error_with_reason(
    images: PlasmaClient, http_files: tuple[str, Path]
) -> None:
    base, root = http_files
    data = raw_disk(2 * 1024 * 1024)
    (root / "disk.raw").write_bytes(data)
    good = await images.import_image(ORG, "from-url", f"{base}/disk.raw", checksum=hashlib.sha256(data).hexdigest())
    bad = await images.import_image(ORG, "from-url-bad", f"{base}/disk.raw", checksum="1" * 64)
    missing = await images.import_image(ORG, "from-url-404", f"{base}/nope.raw")
    assert good.status == ImageStatus.PENDING

    async def settled() -> bool:
        states = [(await images.get_image(ORG, i.id)).status for i in (good, bad, missing)]
        return all(s in (ImageStatus.AVAILABLE, ImageStatus.ERROR) for s in states)

    await until(settled, "URL imports settle")
    assert (await images.get_image(ORG, good.id)).status == ImageStatus.AVAILABLE
    assert await download(images, ORG, good.id) == data
    failed = await images.get_image(ORG, bad.id)
    assert failed.status == ImageStatus.ERROR and "checksum" in failed.metadata["error"]
    assert "404" in (await images.get_image(ORG, missing.id)).metadata["error"]
