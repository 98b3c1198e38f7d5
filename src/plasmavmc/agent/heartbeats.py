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
"""

from __future__ import annotations

from collections.abc import Sequence

from plasmavmc.agent.reporter import Reporter
from plasmavmc.types.node import Node
from plasmavmc.v1 import agent_pb2
from plasmavmc.wire.report_digest import NodeDigest, entry, report_bytes

FULL_EVERY = 12  # heartbeats between full ones (one minute at the default 5 s interval)


class DeltaState:
    """One node's side: the reports the control plane acknowledged, and heartbeats since a full one."""

    def __init__(self, full_every: int = FULL_EVERY) -> None:
        self.full_every = full_every
        self.acked: NodeDigest | None = None
        self.since_full = 0
        self.resyncs = 0  # deltas the control plane answered with `resync`

    def request(self, reports: Sequence[agent_pb2.VmReport]) -> tuple[agent_pb2.HeartbeatRequest, NodeDigest]:
        """The heartbeat's VM part (full or delta), and the digest it would leave acknowledged."""
        current = NodeDigest()
        for report in reports:
            current.set(report.vm_id, entry(report.vm_id, report_bytes(report.status)))
        request = agent_pb2.HeartbeatRequest(digest=current.digest, vm_count=len(current))
        acked = self.acked
        if acked is None or self.since_full + 1 >= self.full_every:
            request.vms.extend(reports)
            return request, current
        request.delta = True
        request.vms.extend(r for r in reports if acked.entries.get(r.vm_id) != current.entries[r.vm_id])
        request.gone_vm_ids.extend(v for v in acked.entries if v not in current.entries)
        return request, current

    def answered(self, request: agent_pb2.HeartbeatRequest, current: NodeDigest, resync: bool) -> None:
        if resync:
            self.acked = None
            self.resyncs += 1
            return
        self.acked = current
        self.since_full = self.since_full + 1 if request.delta else 0


async def send(
    reporter: Reporter, node: Node, reports: Sequence[agent_pb2.VmReport], state: DeltaState
) -> agent_pb2.HeartbeatResponse:
    """One heartbeat for `node`; a `resync` answer is followed at once by a full heartbeat."""
    for _ in range(2):
        request, current = state.request(reports)
        response = await reporter.heartbeat(node, request)
        state.answered(request, current, response.resync)
        if not response.resync:
            break
    return response
