"""Clone from a snapshot (spec extension) end to end: real server, agent and jailed Firecracker.

A source VM of the PVH test guest runs, counts one console line (`#0001 a`: the count lives in guest
memory) and is snapshotted. Two clones are created from that snapshot with `start`, and run at once:
each has its own Firecracker (its own id and pid), its own console, and continues from the snapshot's
memory (`#0002 ...`); a line typed into one is not counted by the other (copy-on-write memory). The
snapshot's files are unchanged (same bytes) and shared, not copied (each clone's memory file is a hard
link of the snapshot's). Deleting the snapshot while the clones run is allowed and safe: they keep
running and answering, and a new clone of it is then NOT_FOUND. Bad clone requests name their field
and leave the VM count unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import open_console
from plasmavmc.errors import InvalidArgument, NotFound, PlasmaError, VmNotFound
from plasmavmc.hypervisor.process import is_running
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import CloneSource, HypervisorType, VirtualMachine
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, types_pb2, vm_pb2
from plasmavmc.wire.convert import to_proto
from plasmavmc.wire.status import from_rpc_error
from tests import binaries
from tests import firecracker_guest as fc
from tests.conftest import Cluster
from tests.contract.backends import read_until
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec
from tests.e2e.test_firecracker_api import pvh_spec, running_cluster
from tests.e2e.test_qemu_api import WsStream

pytestmark = [binaries.require(*fc.BINARIES),
              pytest.mark.skipif(fc.capability_missing() is not None, reason=str(fc.capability_missing()))]
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def clone_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    # three 1-vCPU VMs at once on a 2-core machine
    yield from running_cluster(tmp_path_factory.mktemp("fc-clone"), guest_dir,
                               server_extra="[scheduler]\ncpu_overcommit_ratio = 4.0\n")


@pytest.fixture
async def client(clone_cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(clone_cluster.api) as c:
        yield c


async def say(cluster: Cluster, vm: VirtualMachine, line: str, answer: str) -> None:
    """Type `line` on the VM's serial console and wait for the guest's `answer`."""
    stream = WsStream(await open_console(cluster.console, ORG, PROJECT, vm.id))
    try:
        await stream.write(f"{line}\n".encode())
        await read_until(stream, answer.encode(), bytearray(), DEADLINE_S)
    finally:
        await stream.close()


def files_of(cluster: Cluster, vm_id: str, *parts: str) -> Path:
    found = list((cluster.root / "run" / "fc" / vm_id).glob("jail/*/*/root/" + "/".join(parts)))
    assert len(found) == 1, found
    return found[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def vm_count(client: PlasmaClient) -> int:
    return len(await client.list_all_vms(ORG, PROJECT))


async def test_two_clones_run_apart_and_survive_the_snapshot(client: PlasmaClient, clone_cluster: Cluster) -> None:
    source = await client.create_vm("src", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER,
                                    start=True)
    assert source.state is VmState.RUNNING  # `start` on CreateVm: running on return
    await console_until(client, source.id, fc.READY_LINE_RE, timeout=DEADLINE_S)
    await say(clone_cluster, source, "a", "#0001 a")
    await client.snapshot_vm(ORG, PROJECT, source.id, "s1")
    memory = files_of(clone_cluster, source.id, "snapshots", "s1", "memory")
    before = digest(memory)

    one = await client.clone_vm("clone-1", ORG, PROJECT, "src", "s1")
    two = await client.clone_vm("clone-2", ORG, PROJECT, source.id, "s1")
    for clone in (one, two):
        assert clone.state is VmState.RUNNING and clone.hypervisor is HypervisorType.FIRECRACKER
        assert clone.source_snapshot is not None and clone.source_snapshot.vm_id == source.id
        assert clone.spec == source.spec and clone.node_id == source.node_id
        assert clone.status.host_pid and is_running(clone.status.host_pid)
    assert len({source.status.host_pid, one.status.host_pid, two.status.host_pid}) == 3
    for clone in (one, two):  # shared, never copied: the same inode as the snapshot's memory
        linked = files_of(clone_cluster, clone.id, "clone-source", "memory")
        assert linked.stat().st_ino == memory.stat().st_ino
    assert memory.stat().st_nlink >= 3

    await say(clone_cluster, one, "x", "#0002 x")  # the count resumed from the snapshot's memory
    await say(clone_cluster, one, "y", "#0003 y")
    await say(clone_cluster, two, "z", "#0002 z")  # one's two lines are not in two's memory
    await say(clone_cluster, source, "b", "#0002 b")  # nor in the source's
    console_one = await console_until(client, one.id, "#0003 y", timeout=DEADLINE_S)
    assert "z" not in console_one.split("#0003 y")[0].split("#0002 x")[-1]
    assert fc.READY_LINE not in console_one, "a clone resumes, it does not boot"
    assert digest(memory) == before  # the snapshot's memory file is unchanged by three running guests

    await client.delete_snapshot(ORG, PROJECT, source.id, "s1")  # allowed: clones hold their own links
    assert not memory.exists()
    await say(clone_cluster, one, "after", "#0004 after")
    await say(clone_cluster, two, "after", "#0003 after")
    with pytest.raises(NotFound) as err:
        await client.clone_vm("clone-3", ORG, PROJECT, source.id, "s1")
    assert err.value.field == "source_snapshot.snapshot_id"

    for vm in (one, two, source):
        await client.delete_vm(ORG, PROJECT, vm.id, force=True)
    for vm in (one, two, source):
        with pytest.raises(VmNotFound):
            await client.wait_for_state(ORG, PROJECT, vm.id, {VmState.DELETED}, DEADLINE_S)
        assert not (clone_cluster.root / "run" / "fc" / vm.id).exists()


async def test_bad_clone_requests_name_the_field_and_change_nothing(client: PlasmaClient) -> None:
    qemu = await client.create_vm("q-src", ORG, PROJECT, tiny_spec())
    source = await client.create_vm("fc-src", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER)
    count = await vm_count(client)
    cases: list[tuple[str, str, str]] = [
        ("nobody", "s1", "vm"),
        (qemu.id, "s1", "source_snapshot.vm_id"),
        (source.id, "missing", "source_snapshot.snapshot_id"),
        (source.id, "bad id!", "source_snapshot.snapshot_id"),
        ("", "s1", "source_snapshot.vm_id"),
    ]
    for vm_ref, snap, field in cases:
        with pytest.raises(PlasmaError) as err:
            await client.clone_vm("c", ORG, PROJECT, vm_ref, snap)
        assert isinstance(err.value, (InvalidArgument, NotFound, VmNotFound)), err.value
        assert field in (err.value.field or ""), (vm_ref, snap, err.value)
    with pytest.raises(InvalidArgument) as bad_spec:  # a clone's spec is its source's: none may be given
        request = vm_pb2.CreateVmRequest(
            name="c", org_id=ORG, project_id=PROJECT, spec=to_proto(pvh_spec(), types_pb2.VmSpec()),
            source_snapshot=types_pb2.CloneSource(vm_id=source.id, snapshot_id="s1"))
        await client._unary(client._vm_stub.CreateVm, request)
    assert bad_spec.value.field == "spec"
    assert await vm_count(client) == count
    for vm in (qemu, source):
        await client.delete_vm(ORG, PROJECT, vm.id, force=True)


async def test_agent_port_validates_the_clone_source(clone_cluster: Cluster) -> None:
    """The agent checks a clone's source itself (its port is validated like the API's)."""
    addr = tomllib.loads((clone_cluster.root / "agent.toml").read_text())["agent"]["addr"]
    vm = fc.vm("direct")
    cases = [(CloneSource(vm_id="not-a-uuid", snapshot_id="s1"), "vm.source_snapshot.vm_id"),
             (CloneSource(vm_id=str(uuid.uuid4()), snapshot_id="bad id!"), "vm.source_snapshot.snapshot_id")]
    async with grpc.aio.insecure_channel(addr) as channel:
        for source, field in cases:
            request = agent_pb2.CreateVmRequest(
                vm=to_proto(dataclasses.replace(vm, hypervisor=HypervisorType.FIRECRACKER, source_snapshot=source),
                            types_pb2.VirtualMachine()))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await agent_pb2_grpc.AgentServiceStub(channel).CreateVm(request)
            error = from_rpc_error(err.value)
            assert isinstance(error, InvalidArgument) and error.field == field, error
    assert not (clone_cluster.root / "run" / "fc" / vm.id).exists()
