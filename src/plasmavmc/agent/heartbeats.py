"""Delta heartbeats: what an agent sends each interval — the VM reports that changed, and a digest.

A full heartbeat carries every VM's report (10,000 VMs: 630 KB, 170 ms of agent CPU, and as many
reports for the control plane to look at). Instead each node keeps what the control plane last
acknowledged (`NodeDigest`), and a heartbeat carries only the reports that differ from it, the VMs that
are gone, and the digest and count of the whole list (`wire/report_digest.py`). The control plane
answers `resync` when its copy does not match (it restarted, another replica answered, a delta was
lost); then a full heartbeat is sent at once. A full one is also sent every `FULL_EVERY` heartbeats
(the level-triggered safety net: a report judged stale once is judged again) and whenever nothing
was acknowledged yet (a restarted agent starts with a full one). A failed heartbeat changes nothing
here: the next one carries its changes again.

The node itself is sent whole only when it changed: the control plane answers each heartbeat with the
digest under which it keeps the node (`node_digest`), and while the node stays the same (its heartbeat
time aside) the next heartbeats carry that digest, the node's id and time instead
(`api/reported_nodes.py`). A `resync` answer (also what a control plane that does not hold that digest
answers) forgets it: the node goes whole again. A control plane that answers no digest gets the whole
node every time.

When: `next_beat` spreads a fleet's heartbeats. Each interval is jittered (±10 %), so agents that
started in step (a rack powered on together) drift apart instead of arriving together for ever; after
a failed heartbeat (the control plane restarting, overloaded) the retry comes after a random part of
the interval, so the whole fleet does not retry in one burst, yet never later than the interval: a node
that retries keeps within its heartbeat timeout (the control plane's grace after a restart is one).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from plasmavmc.agent.reporter import Reporter, vm_report
from plasmavmc.types.node import Node
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.vm import VmStatus
from plasmavmc.v1 import agent_pb2
from plasmavmc.wire.report_digest import NodeDigest, entry, report_bytes

FULL_EVERY = 12  # heartbeats between full ones (one minute at the default 5 s interval)
JITTER = 0.1  # each interval is the configured one ± this share
RETRY_FROM = 0.5  # a retry after a failure comes after this share of the interval at the earliest


def next_beat(interval: float, failed: bool, rng: random.Random | None = None) -> float:
    """Seconds until the next heartbeat: the interval ±`JITTER`, or after a failure a random share of
    it from `RETRY_FROM` (never more: the node must stay within its timeout)."""
    draw = (rng or _rng).uniform
    return interval * (draw(RETRY_FROM, 1.0) if failed else draw(1.0 - JITTER, 1.0 + JITTER))


_rng = random.Random()


def _no_exit(vm_id: str) -> ExitKind | None:
    return None


def same_node(a: Node, b: Node) -> bool:
    """The same node as reported, its heartbeat time aside."""
    return a.__dict__ == {**b.__dict__, "last_heartbeat": a.last_heartbeat}


class DeltaState:
    """One node's side: the reports the control plane acknowledged, and heartbeats since a full one."""

    def __init__(self, full_every: int = FULL_EVERY) -> None:
        self.full_every = full_every
        self.acked: NodeDigest | None = None
        self.since_full = 0
        self.resyncs = 0  # deltas the control plane answered with `resync`
        self._node: tuple[Node, int] | None = None  # the node as the control plane keeps it, and its digest
        # per VM: the last (status, exit kind), its report and its hash
        self._reports: dict[str, tuple[tuple[VmStatus, ExitKind | None], agent_pb2.VmReport, int]] = {}

    def request(
        self, statuses: Mapping[str, VmStatus], exit_kind: Callable[[str], ExitKind | None] = _no_exit
    ) -> tuple[agent_pb2.HeartbeatRequest, NodeDigest]:
        """The heartbeat's VM part (full or delta), and the digest it would leave acknowledged. A VM
        whose status (and exit kind) equals the one last seen reuses its report and hash (no conversion,
        no hashing)."""
        current = NodeDigest()
        reports: dict[str, agent_pb2.VmReport] = {}
        for vm_id, status in statuses.items():
            kind = exit_kind(vm_id)
            known = self._reports.get(vm_id)
            if known is None or known[0] != (status, kind):
                report = vm_report(vm_id, status, kind)
                known = ((status, kind), report, entry(vm_id, report_bytes(report)))
                self._reports[vm_id] = known
            reports[vm_id] = known[1]
            current.set(vm_id, known[2])
        for gone in [v for v in self._reports if v not in statuses]:
            del self._reports[gone]
        request = agent_pb2.HeartbeatRequest(digest=current.digest, vm_count=len(current))
        acked = self.acked
        if acked is None or self.since_full + 1 >= self.full_every:
            request.vms.extend(reports.values())
            return request, current
        request.delta = True
        request.vms.extend(r for v, r in reports.items() if acked.entries.get(v) != current.entries[v])
        request.gone_vm_ids.extend(v for v in acked.entries if v not in current.entries)
        return request, current

    def node_digest(self, node: Node) -> int:
        """What to send instead of `node` (the control plane keeps it unchanged); 0: send it whole."""
        kept = self._node
        return kept[1] if kept is not None and same_node(kept[0], node) else 0

    def node_answered(self, node: Node, response: agent_pb2.HeartbeatResponse) -> None:
        self._node = (node, response.node_digest) if response.node_digest and not response.resync else None

    def answered(self, request: agent_pb2.HeartbeatRequest, current: NodeDigest, resync: bool) -> None:
        if resync:
            self.acked = None
            self.resyncs += 1
            return
        self.acked = current
        self.since_full = self.since_full + 1 if request.delta else 0


async def send(
    reporter: Reporter, node: Node, statuses: Mapping[str, VmStatus], state: DeltaState,
    exit_kind: Callable[[str], ExitKind | None] = _no_exit,
) -> agent_pb2.HeartbeatResponse:
    """One heartbeat for `node`; a `resync` answer is followed at once by a full heartbeat."""
    for _ in range(2):
        request, current = state.request(statuses, exit_kind)
        response = await reporter.heartbeat(node, request, state.node_digest(node))
        state.answered(request, current, response.resync)
        state.node_answered(node, response)
        if not response.resync:
            break
    return response
