"""Heartbeats over `HeartbeatStream` through a real server (SQLite) with SIMULATED agents (nothing boots).

One stream per node carries its heartbeats (no unary Heartbeat call reaches the server) and keeps the
node READY past several heartbeat timeouts; a stream killed on either side is opened again (a stopping
server ends its streams instead of waiting its grace out for them); a message
naming another node than the one bound to the stream is refused, and so is bad input, with the field
named and nothing changed. Against a control plane without the stream (UNIMPLEMENTED) the agent falls
back to unary Heartbeat calls; a stream that cannot be opened is not retried before its backoff; one
that is not answered in time fails the heartbeat without adding a unary call.
(mTLS: a stream with another node's certificate is refused in `test_tls_trust.py`.)
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from plasmavmc.agent import heartbeat_lines
from plasmavmc.agent.heartbeat_lines import REOPEN_FROM, Line, Lines
from plasmavmc.agent.reporter import Reporter, vm_report
from plasmavmc.errors import InvalidArgument, NodeNotFound, PermissionDenied, Unavailable
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.states import VmState
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, node_pb2, types_pb2
from plasmavmc.wire.convert import to_proto
from tests.e2e.simulated import SIM, SimCluster, sim_cluster, sim_spec, until
from tests.ports import free_port

ORG, PROJECT = "org-s", "proj-s"
CAP = NodeCapacity(64, 256 * 1024, 4000)
NODE = "sim-s"


@asynccontextmanager
async def cluster(root: Path, guest: Path) -> AsyncIterator[SimCluster]:
    async with sim_cluster(root, guest, [(NODE, CAP, {})], heartbeat_timeout=2, heartbeat_interval=0.3) as c:
        yield c


def line_of(c: SimCluster) -> Line:
    line = c.fleet.reporter.lines.line(NODE)
    assert line is not None, "the node's heartbeats went over no stream"
    return line


async def answered(c: SimCluster, more_than: int, opened_at_least: int = 1) -> Line:
    """Until the node's line has answered more than `more_than` heartbeats on its `opened_at_least`th stream."""
    return await until(lambda: asyncio.sleep(0, line_of(c)),
                       lambda ln: ln.answered > more_than and ln.opened >= opened_at_least and ln.call is not None,
                       60, f"heartbeats answered past {more_than} over stream {opened_at_least}")


def handled(http: str, method: str) -> float:
    """Calls of AgentService `method` the server counted as completed (any code)."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    pattern = rf'^plasmavmc_grpc_server_handled_total{{[^}}]*method="{method}"[^}}]*}} ([0-9.e+]+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def message(node: Node, **fields: Any) -> agent_pb2.HeartbeatRequest:
    request = agent_pb2.HeartbeatRequest(**fields)
    request.node.CopyFrom(to_proto(node, node_pb2.Node()))
    return request


async def test_stream_keeps_the_node_ready_without_unary_calls(tmp_path: Path, guest_dir: Path) -> None:
    async with cluster(tmp_path, guest_dir) as c:
        first = (await c.client.get_node(NODE)).last_heartbeat
        # 20 heartbeats at 0.3 s: three heartbeat timeouts (2 s) over the same stream
        line = await answered(c, 20)
        assert line.opened == 1
        node = await c.client.get_node(NODE)
        assert node.state == NodeState.READY and node.last_heartbeat > first
        assert await asyncio.to_thread(handled, c.http, "Heartbeat") == 0  # no unary call reached the server
        assert await asyncio.to_thread(handled, c.http, "HeartbeatStream") == 0  # and the stream never ended


async def test_killed_stream_is_opened_again(tmp_path: Path, guest_dir: Path) -> None:
    async with cluster(tmp_path, guest_dir) as c:
        vm = await c.client.create_vm("s0", ORG, PROJECT, sim_spec(), SIM)
        await c.client.start_vm(ORG, PROJECT, vm.id)
        line = await answered(c, 2)
        assert line.call is not None
        line.call.cancel()  # killed on the agent's side
        line = await answered(c, line.answered, opened_at_least=2)
        live = line.call
        c.server.stop()  # killed on the server's side: the server is gone, then back
        # a stopping server ends its streams (status OK) rather than holding its graceful stop for them
        assert await live.code() == grpc.StatusCode.OK
        c.server.start()
        line = await answered(c, line.answered, opened_at_least=3)
        node = await until(lambda: c.client.get_node(NODE), lambda n: n.state == NodeState.READY, 60, "READY")
        assert node.state == NodeState.READY
        assert (await c.client.get_vm(ORG, PROJECT, vm.id)).state == VmState.RUNNING


async def test_a_message_naming_another_node_is_refused(tmp_path: Path, guest_dir: Path) -> None:
    async with cluster(tmp_path, guest_dir) as c:
        node = c.fleet.nodes[NODE]
        ghost = Node(**{**node.__dict__, "id": "ghost-s", "name": "ghost-s"})
        lines = Lines([agent_pb2_grpc.AgentServiceStub(c.fleet.reporter.channels[0])])
        try:
            assert await lines.send(NODE, 0, message(node)) is not None  # the stream is now bound to NODE
            with pytest.raises(PermissionDenied) as err:
                await lines.send(NODE, 0, message(ghost))
            assert err.value.field == "node.id"
        finally:
            await lines.close()
        with pytest.raises(NodeNotFound):
            await c.client.get_node("ghost-s")  # nothing was registered


async def test_bad_messages_are_refused_with_the_field_and_change_nothing(tmp_path: Path, guest_dir: Path) -> None:
    async with cluster(tmp_path, guest_dir) as c:
        vm = await c.client.create_vm("s1", ORG, PROJECT, sim_spec(), SIM)
        await c.client.start_vm(ORG, PROJECT, vm.id)
        node = c.fleet.nodes[NODE]
        ghost = Node(**{**node.__dict__, "id": "ghost-b", "name": "ghost-b"})
        report = vm_report(vm.id, await c.fleet.vms.status(vm.id))
        stopped = agent_pb2.VmReport(vm_id=vm.id, status=report.status)
        stopped.status.actual_state = types_pb2.VM_STATE_STOPPED  # refused messages: the VM stays RUNNING
        cases: dict[str, dict[str, Any]] = {
            "gone_vm_ids": dict(vms=[stopped], gone_vm_ids=[str(uuid.uuid4())]),
            "gone_vm_ids[0]": dict(delta=True, gone_vm_ids=["not-a-uuid"], vm_count=0),
            "vms[1]": dict(vms=[stopped, stopped], vm_count=2),
            "vm_count": dict(delta=True, vms=[stopped], vm_count=0),
            "vms[0].vm_id": dict(vms=[agent_pb2.VmReport(vm_id=vm.id.upper(), status=report.status)]),
        }
        lines = Lines([agent_pb2_grpc.AgentServiceStub(c.fleet.reporter.channels[0])])
        try:
            for field, fields in cases.items():
                for who in (ghost, node):  # as the first message of a stream, and after a good one
                    if who is node:
                        assert await lines.send("bad", 0, message(node)) is not None
                    with pytest.raises(InvalidArgument) as err:
                        await lines.send("bad", 0, message(who, **fields))
                    assert err.value.field == field, (field, err.value)
        finally:
            await lines.close()
        with pytest.raises(NodeNotFound):
            await c.client.get_node("ghost-b")
        assert (await c.client.get_vm(ORG, PROJECT, vm.id)).state == VmState.RUNNING
        assert (await c.client.get_node(NODE)).state == NodeState.READY


class OlderControlPlane(agent_pb2_grpc.AgentServiceServicer):
    """A control plane from before HeartbeatStream: unary Heartbeat only (the rest UNIMPLEMENTED)."""

    def __init__(self) -> None:
        self.heartbeats = 0

    async def Heartbeat(self, request: agent_pb2.HeartbeatRequest, context: Any) -> agent_pb2.HeartbeatResponse:
        self.heartbeats += 1
        return agent_pb2.HeartbeatResponse(heartbeat_interval_seconds=5, node_state="NODE_STATE_READY")


@asynccontextmanager
async def reporting_to(control_plane: OlderControlPlane) -> AsyncIterator[Reporter]:
    """An agent's reporter to a stand-in control plane served on a free port; both stopped on the way out."""
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(control_plane, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    reporter = Reporter([f"127.0.0.1:{port}"])
    try:
        yield reporter
    finally:
        await reporter.close()
        await server.stop(None)


async def test_unimplemented_stream_falls_back_to_unary_heartbeats() -> None:
    older = OlderControlPlane()
    node = Node(id="old-1", name="old-1", capacity=CAP, agent_address="127.0.0.1:1")
    async with reporting_to(older) as reporter:
        for _ in range(3):
            answer = await reporter.heartbeat(node, agent_pb2.HeartbeatRequest())
            assert answer.heartbeat_interval_seconds == 5
        assert older.heartbeats == 3
        line = reporter.lines.line("old-1")
        assert line is not None and line.opened == 1 and line.answered == 0  # tried once, then unary


async def test_a_stream_that_cannot_open_waits_for_its_backoff() -> None:
    now = [100.0]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")  # nothing listens there
    lines = Lines([agent_pb2_grpc.AgentServiceStub(channel)], clock=lambda: now[0])
    node = Node(id="far-1", name="far-1", capacity=CAP, agent_address="127.0.0.1:1")
    try:
        assert await lines.send("far-1", 0, message(node)) is None  # broke: the caller sends unary
        line = lines.line("far-1")
        assert line is not None and line.opened == 1 and line.call is None
        assert 100.0 + REOPEN_FROM * 0.5 <= line.reopen_at <= 100.0 + REOPEN_FROM
        assert await lines.send("far-1", 0, message(node)) is None
        assert line.opened == 1  # not reopened before its backoff
        now[0] = line.reopen_at
        assert await lines.send("far-1", 0, message(node)) is None
        assert line.opened == 2 and line.breaks == 2
        assert line.reopen_at - now[0] >= 2 * REOPEN_FROM * 0.5  # the delay grows
    finally:
        await lines.close()
        await channel.close()


class SilentControlPlane(OlderControlPlane):
    """Takes heartbeat streams and never answers on them (a control plane too slow to answer)."""

    async def HeartbeatStream(self, requests: Any, context: Any) -> AsyncIterator[agent_pb2.HeartbeatResponse]:
        async for _ in requests:
            pass
        return
        yield  # an async generator, as gRPC expects of a streaming answer


async def test_an_unanswered_stream_fails_the_heartbeat_without_a_unary_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat_lines, "TIMEOUT", 0.5)
    silent = SilentControlPlane()
    node = Node(id="slow-1", name="slow-1", capacity=CAP, agent_address="127.0.0.1:1")
    async with reporting_to(silent) as reporter:
        with pytest.raises(Unavailable):
            await reporter.heartbeat(node, agent_pb2.HeartbeatRequest())
        line = reporter.lines.line("slow-1")
        assert line is not None and line.call is None and line.breaks == 1  # broken, reopened after backoff
        assert silent.heartbeats == 0  # no unary call was added on top of the slow server's load
