"""The agent's image cache against a real control plane: pull-through verified by sha256, concurrent
fetches of one image download it once, runs of zeros cached as holes, least-recently-used eviction
under the size limit, and images pinned by a VM are never evicted; a VM created through the API pins
its base image until deleted; partial downloads count for eviction and are removed when the agent
starts again."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from plasmavmc.agent.image_cache import ImageCache
from plasmavmc.client import PlasmaClient
from plasmavmc.types.image import Image
from plasmavmc.types.states import VmState
from tests.conftest import Cluster, needs_qemu
from tests.e2e.helpers import GUEST_IMAGE, tiny_spec

ORG = "org-cache"
MIB = 1024 * 1024


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def upload(client: PlasmaClient, name: str, size: int = MIB) -> tuple[Image, bytes]:
    data = os.urandom(size)
    return await client.upload_image(ORG, name, one_chunk(data)), data


async def test_concurrent_fetches_download_once(client: PlasmaClient, cluster: Cluster, tmp_path: Path) -> None:
    image, data = await upload(client, "cache-once", 3 * MIB)
    async with grpc.aio.insecure_channel(cluster.api) as channel:
        cache = ImageCache(tmp_path, channel, 100 * MIB)
        paths = await asyncio.gather(*(cache.fetch(image, ORG) for _ in range(5)))
    assert len(set(paths)) == 1 and paths[0].read_bytes() == data
    assert cache.downloads == 1
    assert not list(tmp_path.rglob(".*.partial"))


async def test_zero_runs_are_cached_as_holes(client: PlasmaClient, cluster: Cluster, tmp_path: Path) -> None:
    """An image's runs of zeros land as holes (a raw disk that is mostly empty takes its data's room) and
    the cached file reads back byte for byte, its trailing zeros included."""
    data = os.urandom(MIB) + bytes(2 * MIB) + os.urandom(100) + bytes(MIB + 7)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), MIB):
            yield data[start:start + MIB]

    image = await client.upload_image(ORG, "cache-sparse", chunks())
    async with grpc.aio.insecure_channel(cluster.api) as channel:
        path = await ImageCache(tmp_path, channel, 100 * MIB).fetch(image, ORG)
    assert path.read_bytes() == data
    allocated = path.stat().st_blocks * 512
    assert allocated < len(data) - 2 * MIB, f"{allocated} bytes allocated for {len(data)}: no holes"


async def test_lru_eviction_spares_recent_and_pinned(client: PlasmaClient, cluster: Cluster, tmp_path: Path) -> None:
    a, b, c, d = [(await upload(client, f"cache-{n}"))[0] for n in "abcd"]
    async with grpc.aio.insecure_channel(cluster.api) as channel:
        cache = ImageCache(tmp_path, channel, 2 * MIB + MIB // 2)  # room for two
        pa = await cache.fetch(a, ORG, pin_for="vm-1")
        pb = await cache.fetch(b, ORG)
        pc = await cache.fetch(c, ORG)  # over the limit: b is the only unpinned one
        assert pa.exists() and not pb.exists() and pc.exists()
        os.utime(pc, (1, 1))  # c becomes the least recently used
        pb = await cache.fetch(b, ORG)
        assert not pc.exists() and pa.exists() and pb.exists()
        cache.unpin("vm-1")
        os.utime(pb, None)
        os.utime(pa, (1, 1))
        pd = await cache.fetch(d, ORG)
        assert not pa.exists() and pb.exists() and pd.exists()
    assert cache.downloads == 5


async def test_partial_downloads_count_for_eviction_and_go_on_restart(
    client: PlasmaClient, cluster: Cluster, tmp_path: Path
) -> None:
    a, b = [(await upload(client, f"partial-{n}"))[0] for n in "ab"]
    async with grpc.aio.insecure_channel(cluster.api) as channel:
        cache = ImageCache(tmp_path, channel, 2 * MIB + MIB // 2)  # room for two
        pb = await cache.fetch(b, ORG)
        (tmp_path / a.id).mkdir()
        left = tmp_path / a.id / f".{a.checksum}.999999.partial"  # a killed agent's half download
        left.write_bytes(b"\0" * MIB)
        pa = await cache.fetch(a, ORG)  # b + the partial + a is over the limit: b goes
        assert pa.exists() and not pb.exists()
        assert left.exists()  # eviction never removes a download that may be in progress
        restarted = ImageCache(tmp_path, channel, 2 * MIB + MIB // 2)
        assert restarted.remove_partials() == 1
        assert not left.exists() and pa.read_bytes()
        assert not list(tmp_path.rglob("*.partial"))


@needs_qemu
async def test_a_vm_pins_its_base_image_until_deleted(client: PlasmaClient, cluster: Cluster) -> None:
    vm = await client.create_vm("pinned-1", "org-pin", "p", tiny_spec())
    created = await client.wait_for_state("org-pin", "p", vm.id, {VmState.STOPPED}, 120)
    pin_file = cluster.root / "cache" / ".pins" / vm.id
    pinned = json.loads(pin_file.read_text())
    base = [p for p in pinned if f"/{GUEST_IMAGE}/" in p]
    assert base and Path(base[0]).exists(), pinned
    await client.delete_vm("org-pin", "p", created.id)
    async with asyncio.timeout(60):
        while pin_file.exists():
            await asyncio.sleep(0.1)  # polling the agent's cleanup, with a deadline
    assert Path(base[0]).exists()  # unpinned, not removed: eviction may take it when room is needed
