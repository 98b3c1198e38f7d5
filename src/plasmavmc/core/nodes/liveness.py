"""Node liveness in memory: when each node was last heard from, without a store write per heartbeat.

A heartbeat used to rewrite its node record every interval (1,000 nodes: 200 writes/s for nothing but a
timestamp). Now each replica remembers, per node, the wall time of the last heartbeat it received, and
the record's `last_heartbeat` is written only when something else changes (state, what the agent
reports) or when the stored value is older than `persist_after`:

- the leader (which runs the expiry, `NodeRegistry.expire`) judges from its own table and persists a
  liveness-only refresh of a record rarely (`LEADER_PERSIST`); instead it writes its whole table as one
  key (`keys.LIVENESS`, every `share_every()` seconds: one write for the fleet), which the other
  replicas read for their gauges and node listings (`absorb`);
- a follower that receives heartbeats persists them in the record every `timeout / 2`, so the leader,
  judging from the record, sees a node that heartbeats to another replica as alive.

A node counts as alive until `max(record, own table, grace start) + timeout`. The grace start is when
this replica started or last took leadership (`grant_grace`): after a restart or a leader change every
node gets a full timeout to be heard from before it can be marked NOT_READY, so a node that keeps
heartbeating is never expired because the new leader had not heard from it yet (the restart storm of
issue 19).
"""

from __future__ import annotations

import json
import time

from plasmavmc.store.records import replace
from plasmavmc.types.node import Node, NodeState

LEADER_PERSIST = 300.0  # seconds between liveness-only writes of a node record by the leader


class Liveness:
    """node id -> wall time of the last heartbeat this replica received."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.leading = False
        self._seen: dict[str, float] = {}
        self._shared: dict[str, float] = {}  # the leader's table, as last read from `keys.LIVENESS`
        self._grace_from = time.time()

    def grant_grace(self) -> None:
        """Every node gets a full timeout from now (a restart, or this replica taking leadership)."""
        self._grace_from = time.time()

    def beat(self, node_id: str, now: float) -> None:
        self._seen[node_id] = max(now, self._seen.get(node_id, 0.0))

    def forget(self, node_id: str) -> None:
        self._seen.pop(node_id, None)
        self._shared.pop(node_id, None)

    def share_every(self) -> float:
        """Seconds between the leader's writes of its table (`keys.LIVENESS`)."""
        return max(1.0, self.timeout / 3)

    def snapshot(self) -> bytes:
        """This replica's table, to be written under `keys.LIVENESS`."""
        return json.dumps({k: round(v, 3) for k, v in self._seen.items()}, separators=(",", ":")).encode()

    def absorb(self, raw: bytes) -> None:
        """Take in the leader's table (what a follower knows beyond its own heartbeats); unreadable
        content is ignored (the next write replaces it)."""
        try:
            table = json.loads(raw)
        except ValueError:
            return
        if isinstance(table, dict):
            self._shared = {str(k): float(v) for k, v in table.items() if isinstance(v, (int, float))}

    def last_seen(self, node: Node) -> float:
        """The latest heartbeat known here: the record's or this replica's own."""
        return max(float(node.last_heartbeat), self._seen.get(node.id, 0.0), self._shared.get(node.id, 0.0))

    def expires_at(self, node: Node) -> float:
        """When the node turns NOT_READY unless heard from: a full timeout after the later of its last
        heartbeat and the grace start."""
        return max(self.last_seen(node), self._grace_from) + self.timeout

    def online(self, node: Node, now: float) -> bool:
        """READY and heard from in time. Only the leader's table is complete (it persists liveness
        rarely), so another replica trusts the state the leader keeps."""
        return node.state == NodeState.READY and (not self.leading or now < self.expires_at(node))

    def persist_after(self) -> float:
        """How old the record's `last_heartbeat` may get before a heartbeat writes it anyway."""
        return LEADER_PERSIST if self.leading else self.timeout / 2

    def shown(self, node: Node) -> Node:
        """The node with `last_heartbeat` as this replica knows it (for reads, never written back)."""
        seen = int(self.last_seen(node))
        return node if seen == node.last_heartbeat else replace(node, last_heartbeat=seen)
