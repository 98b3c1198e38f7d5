"""A heartbeat's node is converted and validated once per change (`api/agent_reports.ReportedNodes`):
what it returns equals converting the message, heartbeat time included; a changed node is converted
again; a bad one is refused (naming the field) on every heartbeat, never remembered."""

from __future__ import annotations

import pytest

from plasmavmc.agent.simulated import simulated_node
from plasmavmc.api.agent_reports import ReportedNodes
from plasmavmc.errors import InvalidArgument
from plasmavmc.store.records import replace
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.v1 import node_pb2
from plasmavmc.wire.convert import from_proto, to_proto


def _message(node: Node) -> node_pb2.Node:
    return to_proto(node, node_pb2.Node())


def test_the_remembered_node_is_the_converted_one() -> None:
    nodes = ReportedNodes()
    base = simulated_node("rn-1", "127.0.0.1:9", NodeCapacity(8, 4096, 100))
    for beat in (1_700_000_000, 1_700_000_005):
        message = _message(replace(base, last_heartbeat=beat))
        assert nodes.of(message) == from_proto(Node, message)
        assert message.last_heartbeat == beat  # the message is left as it came
    grown = _message(replace(base, capacity=NodeCapacity(16, 4096, 100), last_heartbeat=1_700_000_010))
    assert nodes.of(grown).capacity.vcpus == 16


def test_a_bad_node_is_refused_every_time() -> None:
    nodes = ReportedNodes()
    bad = _message(simulated_node("rn-2", "127.0.0.1:9", NodeCapacity(8, 4096, 100)))
    bad.capacity.vcpus = 10**9
    for _ in range(2):
        with pytest.raises(InvalidArgument) as err:
            nodes.of(bad)
        assert err.value.field == "node.capacity.vcpus"
