"""A node that did not change is sent by its digest (`node_digest`), through a real server (SQLite) with a
SIMULATED agent (nothing boots).

After the first heartbeat the server answers the digest under which it keeps the node, and the agent's
next heartbeats carry only the node's id and time with that digest; a change to the node is sent whole
(and lands in the record), then compact again under the new digest. A restarted server holds no node:
it answers `resync`, the agent sends the node whole at once, and the node stays READY. A digest the
server does not hold is answered `resync` and changes nothing; a compact node carrying anything but its
id and time is refused with INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from plasmavmc.agent.heartbeat_lines import Lines
from plasmavmc.errors import InvalidArgument, NodeNotFound
from plasmavmc.store.records import replace
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, node_pb2
from tests.e2e.simulated import SimCluster, sim_cluster, until

CAP = NodeCapacity(64, 256 * 1024, 4000)
NODE = "sim-c"


@asynccontextmanager
async def cluster(root: Path, guest: Path) -> AsyncIterator[tuple[SimCluster, list[int]]]:
    """The cluster, and the `node_digest` of every heartbeat of its agent that was answered (0: the node
    whole)."""
    async with sim_cluster(root, guest, [(NODE, CAP, {})], heartbeat_timeout=3, heartbeat_interval=0.3) as c:
        sent: list[int] = []
        reporter = c.fleet.reporter
        whole = reporter.heartbeat

        async def heartbeat(node: Node, request: agent_pb2.HeartbeatRequest,
                            node_digest: int = 0) -> agent_pb2.HeartbeatResponse:
            answer = await whole(node, request, node_digest)
            sent.append(node_digest)
            return answer

        reporter.heartbeat = heartbeat  # type: ignore[method-assign]
        yield c, sent


async def compact_beats(sent: list[int], after: int, count: int) -> int:
    """Until `count` answered heartbeats past index `after` went by digest; returns the last digest."""
    def beats() -> list[int]:
        return [d for d in sent[after:] if d]

    async def probe() -> list[int]:
        return beats()

    digests = await until(probe, lambda ds: len(ds) >= count, 60, f"{count} heartbeats by digest")
    return digests[-1]


async def test_an_unchanged_node_goes_by_digest_and_a_change_goes_whole(tmp_path: Path, guest_dir: Path) -> None:
    async with cluster(tmp_path, guest_dir) as (c, sent):
        first = await compact_beats(sent, 0, 5)  # (the heartbeat that registered the node, whole, came before)
        assert set(sent) == {first}  # one digest while the node stays the same
        node = await c.client.get_node(NODE)
        assert node.state == NodeState.READY and node.capacity == CAP
        c.fleet.nodes[NODE] = replace(c.fleet.nodes[NODE], labels={"rack": "r7"})
        mark = len(sent)
        changed = await compact_beats(sent, mark, 3)
        assert changed != first
        assert sent[mark] == 0  # the changed node went whole first
        node = await c.client.get_node(NODE)
        assert node.labels == {"rack": "r7"} and node.state == NodeState.READY


async def test_a_restarted_server_gets_the_node_whole_again(tmp_path: Path, guest_dir: Path) -> None:
    async with cluster(tmp_path, guest_dir) as (c, sent):
        digest = await compact_beats(sent, 0, 3)
        resyncs = c.fleet.deltas[NODE].resyncs
        c.server.stop()
        c.server.start()
        mark = len(sent)
        again = await compact_beats(sent, mark, 3)
        assert again == digest  # the same node, kept under the same digest by the new server
        assert 0 in sent[mark:]  # sent whole after the restart
        assert c.fleet.deltas[NODE].resyncs > resyncs  # the server that held nothing answered resync
        node = await until(lambda: c.client.get_node(NODE), lambda n: n.state == NodeState.READY, 60, "READY")
        assert node.capacity == CAP


async def test_an_unknown_digest_is_resynced_and_a_bad_compact_node_refused(tmp_path: Path, guest_dir: Path) -> None:
    async with cluster(tmp_path, guest_dir) as (c, sent):
        digest = await compact_beats(sent, 0, 1)
        lines = Lines([agent_pb2_grpc.AgentServiceStub(c.fleet.reporter.channels[0])])
        try:
            ghost = agent_pb2.HeartbeatRequest(node=node_pb2.Node(id="ghost-c", last_heartbeat=1), node_digest=digest)
            answer = await lines.send("ghost-c", 0, ghost)
            assert answer is not None and answer.resync and answer.node_digest == 0
            stale = agent_pb2.HeartbeatRequest(node=node_pb2.Node(id=NODE, last_heartbeat=1), node_digest=digest ^ 1)
            answer = await lines.send("stale", 0, stale)
            assert answer is not None and answer.resync
            grown = node_pb2.Node(id=NODE, last_heartbeat=1, capacity=node_pb2.NodeCapacity(vcpus=1))
            extra = agent_pb2.HeartbeatRequest(node=grown, node_digest=digest)
            with pytest.raises(InvalidArgument) as err:
                await lines.send("extra", 0, extra)
            assert err.value.field == "node.capacity"
        finally:
            await lines.close()
        with pytest.raises(NodeNotFound):
            await c.client.get_node("ghost-c")  # nothing was registered
        node = await c.client.get_node(NODE)
        assert node.capacity == CAP and node.state == NodeState.READY  # the refused compact node changed nothing
