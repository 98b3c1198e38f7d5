"""A heartbeat's node is converted and validated once per change (`api/reported_nodes.ReportedNodes`):
what it returns equals converting the message (its heartbeat time beside it); an unchanged node gives
the same object; a changed node is converted again; a bad one is refused (naming the field) on every
heartbeat, never remembered. A heartbeat carrying `node_digest` instead of the node gets the node kept
under that digest, or None (answered `resync`) when this replica keeps another or none; a compact node
carrying more than its id and time is refused."""

from __future__ import annotations

import pytest

from plasmavmc.agent.simulated import simulated_node
from plasmavmc.api.reported_nodes import ReportedNodes
from plasmavmc.errors import InvalidArgument
from plasmavmc.store.records import replace
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.v1 import node_pb2
from plasmavmc.wire.convert import from_proto, to_proto

BASE = simulated_node("rn-1", "127.0.0.1:9", NodeCapacity(8, 4096, 100))


def _message(node: Node) -> node_pb2.Node:
    return to_proto(node, node_pb2.Node())


def test_the_remembered_node_is_the_converted_one() -> None:
    nodes = ReportedNodes()
    seen = []
    for beat in (1_700_000_000, 1_700_000_005):
        message = _message(replace(BASE, last_heartbeat=beat))
        reported = nodes.of(message)
        assert reported is not None
        assert replace(reported.node, last_heartbeat=beat) == from_proto(Node, message)
        assert reported.beat == beat
        assert message.last_heartbeat == beat  # the message is left as it came
        seen.append(reported)
    assert seen[0].node is seen[1].node and seen[0].digest == seen[1].digest != 0
    grown = nodes.of(_message(replace(BASE, capacity=NodeCapacity(16, 4096, 100), last_heartbeat=1_700_000_010)))
    assert grown is not None and grown.node.capacity.vcpus == 16 and grown.digest != seen[0].digest


def test_a_bad_node_is_refused_every_time() -> None:
    nodes = ReportedNodes()
    bad = _message(simulated_node("rn-2", "127.0.0.1:9", NodeCapacity(8, 4096, 100)))
    bad.capacity.vcpus = 10**9
    for _ in range(2):
        with pytest.raises(InvalidArgument) as err:
            nodes.of(bad)
        assert err.value.field == "node.capacity.vcpus"


def test_a_digest_stands_for_the_node_kept_under_it() -> None:
    nodes = ReportedNodes()
    whole = nodes.of(_message(replace(BASE, last_heartbeat=1_700_000_000)))
    assert whole is not None
    compact = node_pb2.Node(id=BASE.id, last_heartbeat=1_700_000_005)
    again = nodes.of(compact, whole.digest)
    assert again is not None and again.node is whole.node and again.beat == 1_700_000_005
    assert again.digest == whole.digest
    assert nodes.of(compact, whole.digest ^ 1) is None  # another digest: not this node as kept here
    assert ReportedNodes().of(compact, whole.digest) is None  # a replica that keeps no node for it
    changed = nodes.of(_message(replace(BASE, labels={"zone": "z9"}, last_heartbeat=1_700_000_010)))
    assert changed is not None
    assert nodes.of(compact, whole.digest) is None  # the node changed since: the old digest is stale


def test_a_compact_node_carries_only_its_id_and_time() -> None:
    nodes = ReportedNodes()
    whole = nodes.of(_message(BASE))
    assert whole is not None
    extra = node_pb2.Node(id=BASE.id, last_heartbeat=1_700_000_005, agent_address="10.0.0.1:1")
    with pytest.raises(InvalidArgument) as err:
        nodes.of(extra, whole.digest)
    assert err.value.field == "node.agent_address"
