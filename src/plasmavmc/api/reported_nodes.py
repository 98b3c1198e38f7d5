"""`ReportedNodes`: the node each heartbeat reports, converted and validated once per change, not once per
heartbeat, and known by a digest so an agent whose node did not change sends only its id.

Keyed by node id, this replica keeps the node message serialized without its heartbeat time, the
converted node (`last_heartbeat` 0) and that serialization's digest (the first 8 bytes of its BLAKE2b,
never 0). A heartbeat carrying the whole node costs that serialization and a lookup while the node is
unchanged; one carrying `node_digest` instead (`agent.proto`: `node` then holds only `id` and
`last_heartbeat`) costs the lookup alone. Either way an unchanged node gives the very object it gave
before, so the registry knows it unchanged without a merge (`NodeRegistry.heartbeat`). A digest this
replica does not hold for that node (it restarted, the node changed, another replica acknowledged it)
gives None: the heartbeat is answered `resync` and the agent sends its node whole.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from plasmavmc import validation_reports
from plasmavmc.errors import InvalidArgument
from plasmavmc.store.records import replace
from plasmavmc.types.node import Node
from plasmavmc.v1 import node_pb2
from plasmavmc.wire.convert import from_proto

#: what a heartbeat's `node` may hold beside `node_digest`
COMPACT_FIELDS = frozenset({"id", "last_heartbeat"})


class Reported(NamedTuple):
    node: Node  # as converting the message would give, `last_heartbeat` 0 (the same object while unchanged)
    beat: int  # the time the agent stamped on the heartbeat
    digest: int  # under which this replica keeps the node (the answer's `node_digest`)


def digest_of(raw: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") or 1


class ReportedNodes:
    LIMIT = 100_000  # nodes remembered; past it the memory starts over

    def __init__(self) -> None:
        self._last: dict[str, tuple[bytes, Node, int]] = {}

    def of(self, message: node_pb2.Node, digest: int = 0) -> Reported | None:
        """The reported node: from the whole `message`, or (`digest` set) the node kept under that digest,
        None when none is (bad input raises INVALID_ARGUMENT naming the field, and nothing is kept)."""
        beat = message.last_heartbeat
        if digest:
            return self._known(message, digest, beat)
        message.last_heartbeat = 0
        raw = message.SerializeToString(deterministic=True)
        message.last_heartbeat = beat
        known = self._last.get(message.id)
        if known is None or known[0] != raw:
            node = validation_reports.node(from_proto(Node, message))
            if len(self._last) >= self.LIMIT:
                self._last.clear()
            known = self._last[message.id] = (raw, replace(node, last_heartbeat=0), digest_of(raw))
        return Reported(known[1], beat, known[2])

    def _known(self, message: node_pb2.Node, digest: int, beat: int) -> Reported | None:
        extra = [fd.name for fd, _ in message.ListFields() if fd.name not in COMPACT_FIELDS]
        if extra:
            raise InvalidArgument(f"node.{extra[0]}", "with node_digest the node carries only its id and time")
        known = self._last.get(message.id)
        if known is None or known[2] != digest:
            return None
        return Reported(known[1], beat, digest)
