"""Hostile input at every port (issue 13, input half), against a real server and agent.

- SSRF: URL imports of loopback, link-local and private addresses, of a name resolving to loopback, and
  a redirect from an allow-listed first hop to loopback are all refused; the target never sees a request.
- Hostile images: a truncated qcow2 and a qcow2 whose virtual size is over the configured bound are
  refused with a clear error, and nothing is stored.
- Image boot metadata that would reach QEMU's `-append` (newline, NUL) is refused like `kernel_args`.
- Counts: a VM with more disks or NICs than the documented limits is refused naming the field; a disk's
  virtual size counts against `max_storage_gib`.
- A poisoned heartbeat (`hypervisors = [0]`, a node name with an ANSI escape) is refused; an unreadable
  node record already in the store is moved aside and counted, and ListNodes, scheduling and `/ready`
  keep working.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import ErrorCode, NoSuitableNode, PlasmaError, QuotaExceeded
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.image import ImageStatus
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.types.vm import DiskSource, DiskSpec, MemorySpec, NetworkSpec
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, node_pb2
from tests.conftest import ADMIN_CREDENTIAL, Cluster, needs_qemu, start_cluster
from tests.e2e.helpers import ORG, PROJECT, tiny_spec, until
from tests.ports import free_port

pytestmark = [needs_qemu]
ALLOWED_HOP = "127.0.0.2"  # the one loopback address this cluster's URL imports may reach
ORG_H = "org-harden"


@pytest.fixture(scope="module")
def hcluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    extra = f'[images]\nurl_allow_cidrs = ["{ALLOWED_HOP}/32"]\nmax_virtual_size_gib = 64\n'
    c = start_cluster(tmp_path_factory.mktemp("harden"), guest_dir, node_id="harden-node", server_extra=extra)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
async def hclient(hcluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(hcluster.api) as c:
        yield c


class Target:
    """An HTTP server on loopback that counts the requests it gets (it must get none)."""

    def __init__(self, host: str, redirect_to: str | None = None) -> None:
        self.host, self.port, self.redirect_to, self.hits = host, free_port(), redirect_to, 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to)
        return web.Response(body=b"\0" * 4096)

    async def __aenter__(self) -> Target:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def url(self, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}/disk.raw"


async def names(client: PlasmaClient) -> set[str]:
    return {i.name for i in await client.list_images(ORG_H)}


@pytest.mark.parametrize(("case", "url"), [
    ("loopback", "http://127.0.0.1:{port}/disk.raw"),
    ("loopback name", "http://localhost:{port}/disk.raw"),
    ("loopback v6", "http://[::1]:{port}/disk.raw"),
    ("v4-mapped loopback", "http://[::ffff:127.0.0.1]:{port}/disk.raw"),
    ("link-local metadata", "http://169.254.169.254/latest/meta-data"),
    ("private 10/8", "http://10.1.2.3/disk.raw"),
    ("private 192.168/16", "http://192.168.0.1/disk.raw"),
    ("unspecified", "http://0.0.0.0:{port}/disk.raw"),
    ("multicast", "http://224.0.0.1/disk.raw"),
    ("not http", "file:///etc/passwd"),
])
async def test_url_import_to_a_non_public_address_is_refused_and_fetches_nothing(
    hclient: PlasmaClient, case: str, url: str
) -> None:
    async with Target("127.0.0.1") as target:
        before = await names(hclient)
        with pytest.raises(PlasmaError) as info:
            await hclient.import_image(ORG_H, "ssrf", url.format(port=target.port))
        assert info.value.code == ErrorCode.INVALID_ARGUMENT, info.value
        assert info.value.field == "source.url.url"
        assert await names(hclient) == before
        assert target.hits == 0


async def test_the_servers_own_metrics_are_not_importable(hcluster: Cluster, hclient: PlasmaClient) -> None:
    with pytest.raises(PlasmaError) as info:
        await hclient.import_image(ORG_H, "own-metrics", f"{hcluster.http}/metrics")
    assert info.value.field == "source.url.url"


async def test_a_redirect_to_loopback_is_refused_at_the_hop(hclient: PlasmaClient) -> None:
    async with Target("127.0.0.1") as inner, Target(ALLOWED_HOP, redirect_to=inner.url()) as hop:
        image = await hclient.import_image(ORG_H, "redirected", hop.url())
        assert image.status == ImageStatus.PENDING  # the first hop is allowed

        async def settled() -> bool:
            return (await hclient.get_image(ORG_H, image.id)).status == ImageStatus.ERROR

        await until(settled, "the redirected import fails")
        failed = await hclient.get_image(ORG_H, image.id)
        assert "127.0.0.1" in failed.metadata["error"] and "refused" in failed.metadata["error"]
        assert hop.hits == 1
        assert inner.hits == 0
        await hclient.delete_image(ORG_H, image.id)


def qcow2(path: Path, size: str) -> bytes:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True, timeout=60)
    return path.read_bytes()


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1024 * 1024):
        yield data[i:i + 1024 * 1024]


@pytest.mark.parametrize(("case", "size", "cut", "says"), [
    ("truncated qcow2", "1G", 200, "consistency check"),
    ("virtual size over the bound", "16T", None, "virtual size"),
])
async def test_hostile_image_is_refused_and_nothing_stored(
    hcluster: Cluster, hclient: PlasmaClient, tmp_path: Path, case: str, size: str, cut: int | None, says: str
) -> None:
    data = qcow2(tmp_path / "x.qcow2", size)[:cut]
    before = await names(hclient)
    with pytest.raises(PlasmaError) as info:
        await hclient.upload_image(ORG_H, "hostile", one_chunk(data))
    assert info.value.code == ErrorCode.INVALID_ARGUMENT, info.value
    assert info.value.field == "chunk"
    assert says in info.value.message
    assert await names(hclient) == before
    stored = [p for p in (hcluster.root / "images").rglob("*") if p.is_file()]
    assert not [p for p in stored if ORG_H in str(p)]


async def test_a_consistent_qcow2_is_still_accepted(hclient: PlasmaClient, tmp_path: Path) -> None:
    image = await hclient.upload_image(ORG_H, "fine-qcow2", one_chunk(qcow2(tmp_path / "ok.qcow2", "1G")))
    assert image.status == ImageStatus.AVAILABLE
    await hclient.delete_image(ORG_H, image.id)


@pytest.mark.parametrize("cmdline", ["console=ttyS0\n-device x", "console=ttyS0\0", "a" * 600, "x'y"])
async def test_image_kernel_cmdline_follows_the_kernel_args_rules(
    hclient: PlasmaClient, tmp_path: Path, cmdline: str
) -> None:
    before = await names(hclient)
    with pytest.raises(PlasmaError) as info:
        await hclient.upload_image(ORG_H, "bad-cmdline", one_chunk(b"\0" * 4096),
                                   metadata={"kernel_cmdline": cmdline})
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    assert info.value.field is not None and "kernel_cmdline" in info.value.field
    assert await names(hclient) == before
    image = await hclient.upload_image(ORG_H, "ok-cmdline", one_chunk(b"\0" * 4096))
    with pytest.raises(PlasmaError) as info:
        await hclient.update_image(ORG_H, image.id, metadata={"kernel_cmdline": cmdline})
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    assert (await hclient.get_image(ORG_H, image.id)).metadata == {}
    await hclient.delete_image(ORG_H, image.id)


@pytest.mark.parametrize(("field", "change"), [
    ("spec.disks", lambda s: replace(s, disks=tuple(
        DiskSpec(id=f"d{i}", source=DiskSource(image_id="plasmavmc-tiny"), size_gib=1) for i in range(17)))),
    ("spec.network", lambda s: replace(s, network=tuple(NetworkSpec(id=f"n{i}", network_id="net") for i in range(9)))),
])
async def test_too_many_devices_are_refused(hclient: PlasmaClient, field: str, change: Callable[..., object]) -> None:
    with pytest.raises(PlasmaError) as info:
        await hclient.create_vm("many-devices", ORG, PROJECT, change(tiny_spec()))  # type: ignore[arg-type]
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    assert info.value.field == field
    assert await hclient.list_all_vms(ORG, PROJECT) == []


async def heartbeat(cluster: Cluster, node: node_pb2.Node) -> grpc.aio.AioRpcError | None:
    async with grpc.aio.insecure_channel(cluster.api) as channel:
        try:
            await agent_pb2_grpc.AgentServiceStub(channel).Heartbeat(agent_pb2.HeartbeatRequest(node=node))
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


async def serves(cluster: Cluster, client: PlasmaClient) -> None:
    """ListNodes, scheduling (over every node) and `/ready` all still work."""
    assert cluster.node_id in {n.id for n in await client.list_nodes()}
    with pytest.raises(NoSuitableNode):  # the scheduler ran over the node list and judged each node
        await client.create_vm("too-big", ORG, PROJECT, replace(tiny_spec(), memory=MemorySpec(size_mib=1024**2)))
    async with aiohttp.ClientSession() as session, session.get(f"{cluster.http}/ready") as resp:
        assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(("node", "field"), [
    (node_pb2.Node(id="poison-1", hypervisors=[0]), "node.hypervisors[0]"),  # type: ignore[list-item]
    (node_pb2.Node(id="poison-2", hypervisors=[99]), "node.hypervisors[0]"),  # type: ignore[list-item]
    (node_pb2.Node(id="poison-3", name="\x1b[31mred"), "node.name"),
    (node_pb2.Node(id="poison-4", capacity=node_pb2.NodeCapacity(vcpus=2**32 - 1)), "node.capacity.vcpus"),
    (node_pb2.Node(id="poison-6", allocatable=node_pb2.NodeCapacity(memory_mib=2**64 - 1)),
     "node.allocatable.memory_mib"),
    (node_pb2.Node(id="poison-5", agent_address="%s%n"), "node.agent_address"),
])
async def test_a_poisoned_heartbeat_is_refused(
    hcluster: Cluster, hclient: PlasmaClient, node: node_pb2.Node, field: str
) -> None:
    err = await heartbeat(hcluster, node)
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert field in (err.details() or "")
    assert node.id not in {n.id for n in await hclient.list_nodes()}
    await serves(hcluster, hclient)


async def test_an_unreadable_node_record_is_moved_aside_and_counted(hcluster: Cluster, hclient: PlasmaClient) -> None:
    store = await SqliteStore.open(str(hcluster.root / "state.db"))
    try:
        await store.put(keys.node("rotten"), b'{"id": "rotten", "hypervisors": [null]}')
        await serves(hcluster, hclient)
        assert await store.get(keys.node("rotten")) is None
        assert await store.get(keys.QUARANTINE + "nodes/rotten") is not None
    finally:
        await store.close()
    async with aiohttp.ClientSession() as session, session.get(f"{hcluster.http}/metrics") as resp:
        assert 'plasmavmc_corrupt_records_total{kind="Node"}' in await resp.text()


async def test_a_disks_virtual_size_counts_against_max_storage_gib(hclient: PlasmaClient, tmp_path: Path) -> None:
    org, project = ORG_H, "proj-storage"
    await hclient.set_quota(org, project, ResourceLimits(max_storage_gib=2))
    image = await hclient.upload_image(org, "three-gib", one_chunk(qcow2(tmp_path / "3g.qcow2", "3G")))
    assert image.min_disk_gib == 3  # a 200 KiB file that expands to 3 GiB
    base = tiny_spec()
    spec = replace(base, boot=replace(base.boot, machine_type="q35"),  # the image has no kernel: firmware boot
                   disks=(DiskSpec(id="root", source=DiskSource(image_id=image.id), size_gib=1),))
    with pytest.raises(PlasmaError) as info:
        await hclient.create_vm("small-disk", org, project, spec)
    assert info.value.code == ErrorCode.INVALID_ARGUMENT and info.value.field == "spec.disks[0].size_gib"
    spec = replace(spec, disks=(replace(spec.disks[0], size_gib=3),))
    with pytest.raises(QuotaExceeded, match="max_storage_gib"):
        await hclient.create_vm("big-disk", org, project, spec)
    assert await hclient.list_all_vms(org, project) == []
    await hclient.delete_image(org, image.id)


@pytest.mark.parametrize(("path", "payload", "field"), [
    ("/plasmavmc.v1.VmService/CreateVm", b"\xff\xff\xff", "request"),  # not a message at all
    ("/plasmavmc.v1.VmService/CreateVm", b"(c", "hypervisor"),  # hypervisor = 99, a number the enum lacks
    ("/plasmavmc.agent.v1.AgentService/Heartbeat", b"\n\x06\n\x01n:\x01\x00", "node.hypervisors[0]"),  # [0]
])
async def test_raw_bytes_are_refused_naming_the_field(hcluster: Cluster, path: str, payload: bytes, field: str) -> None:
    auth = (("authorization", f"Bearer {ADMIN_CREDENTIAL.read_text().strip()}"),)
    async with grpc.aio.insecure_channel(hcluster.api) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await channel.unary_unary(path)(payload, timeout=30, metadata=auth)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}:")
