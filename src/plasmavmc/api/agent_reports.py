"""The control plane's half of `plasmavmc.agent.v1.AgentService`: Heartbeat (one call, or a stream of
them: HeartbeatStream, one per agent, the node checked once when it opens) and ReportStatus.

Agents call these; the VM operations of the same service are served by the agents themselves, so here
they answer UNIMPLEMENTED saying so.

Trust: with `authenticate` (the API requires client certificates, `[server.tls] ca_file`) a report is
accepted only from the certificate of the node it names, so no caller can register a made-up node,
move another node's agent address or speak for another node's VMs. Without it (the loopback default)
reports are taken on trust, which the server logs at start-up. Either way the control plane computes
`allocatable` itself (`core/nodes/registry.py`) and a report about a VM counts only if the VM is
assigned to the reporting node (`core/nodes/reports.py`). A heartbeat may be a delta (only the VMs
whose report changed, `agent/heartbeats.py`): its digest is checked against this replica's copy
(`core/nodes/report_digests.py`), and a mismatch answers `resync`. Its node may be its id and a digest
alone (`api/reported_nodes.py`); a digest this replica does not hold answers `resync` with nothing done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from plasmavmc import validation, validation_reports
from plasmavmc.api.reported_nodes import Reported, ReportedNodes
from plasmavmc.core.context import Core
from plasmavmc.core.networks import peers
from plasmavmc.core.nodes import reports
from plasmavmc.errors import PermissionDenied
from plasmavmc.pki import identity
from plasmavmc.types.node import Node, NodeState
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.vm import VmStatus
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, node_pb2, types_pb2
from plasmavmc.wire.convert import enum_from_proto, enum_to_proto, from_proto
from plasmavmc.wire.edge import ServicerContext, answer_unserved, stream, unary
from plasmavmc.wire.peer import peer_identity
from plasmavmc.wire.report_digest import report_bytes

Ctx = ServicerContext
ON_AGENT = "served by the node agent (port 8082), not by the control plane"
#: each node state's protobuf name, worked out once (not per heartbeat answer)
_STATES = {state: node_pb2.NodeState.Name(enum_to_proto(state, node_pb2.NodeState.DESCRIPTOR)) for state in NodeState}
#: the answer to a heartbeat whose `node_digest` this replica does not hold: nothing was done, send it all
RESEND = agent_pb2.HeartbeatResponse(resync=True)


class AgentReportServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, core: Core, heartbeat_interval: int, authenticate: bool = False) -> None:
        self.core = core
        self.heartbeat_interval = heartbeat_interval
        self.authenticate = authenticate
        self._agent_starts: dict[str, int] = {}  # node id -> the agent start last seen by this replica
        self._tasks: set[asyncio.Task[int]] = set()
        self._nodes = ReportedNodes()
        self._answers: dict[str, tuple[tuple[NodeState, int], agent_pb2.HeartbeatResponse]] = {}  # node -> last
        self._streams: set[asyncio.Task[Any]] = set()  # the tasks serving open heartbeat streams
        self._stopping = False

    def _on_agent_start(self, node: Node) -> None:
        """A node whose agent (re)started since this replica last heard from it is told every network
        overlay it carries again, in the background (the heartbeat is not held up)."""
        if not node.agent_started_at or self._agent_starts.get(node.id) == node.agent_started_at:
            return
        self._agent_starts[node.id] = node.agent_started_at
        task = asyncio.get_running_loop().create_task(peers.push_node(self.core, node.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _speaks_for(self, context: Ctx, node_id: str, field: str) -> None:
        """Refuse (PERMISSION_DENIED) a caller whose certificate does not name node `node_id`."""
        if not self.authenticate:
            return
        who = peer_identity(context)
        if who != identity.node(node_id):
            raise PermissionDenied(
                f"a report for node {node_id!r} needs that node's certificate; the caller presented {who or 'none'}",
                field=field,
            )

    @unary
    async def Heartbeat(self, request: agent_pb2.HeartbeatRequest, context: Ctx) -> Any:
        reported = self._nodes.of(request.node, request.node_digest)
        if reported is None:
            return RESEND
        self._speaks_for(context, reported.node.id, "node.id")
        return await self._beat(request, reported)

    @stream
    async def HeartbeatStream(self, requests: AsyncIterator[agent_pb2.HeartbeatRequest], context: Ctx) -> Any:
        """Heartbeats of one node over one stream: the caller is checked at its first message and the
        node bound to the stream; each message is then handled as a Heartbeat call. An error answers
        the stream and ends it (`edge.stream`)."""
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        bound = ""
        try:
            async for request in requests:
                reported = self._nodes.of(request.node, request.node_digest)
                if reported is None:
                    yield RESEND
                    continue
                if reported.node.id != bound:
                    bound = self._bind(context, bound, reported.node.id)
                yield await self._beat(request, reported)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            task.uncancel()  # ended by `end_streams`: the stream ends (status OK), the server stops at once
        finally:
            self._streams.discard(task)

    def end_streams(self) -> None:
        """End every open heartbeat stream (each agent reopens its stream at its next heartbeat,
        elsewhere or here once back): the server is stopping, and open streams would hold its graceful
        stop for the whole grace. Their handlers are cancelled: no per-message work is added to watch
        for this."""
        self._stopping = True
        for task in list(self._streams):
            task.cancel()

    def _bind(self, context: Ctx, bound: str, node_id: str) -> str:
        """The node a stream's first message names is bound to the stream (the caller must speak for
        it); a later message naming another node is refused."""
        if bound:
            raise PermissionDenied(
                f"this stream carries the heartbeats of node {bound!r}; node {node_id!r} needs its own",
                field="node.id",
            )
        self._speaks_for(context, node_id, "node.id")
        return node_id

    async def _beat(self, request: agent_pb2.HeartbeatRequest, reported: Reported) -> agent_pb2.HeartbeatResponse:
        """One heartbeat of `reported` (converted and validated; the caller may speak for it), over
        either RPC: the node refreshed, its VM reports applied, its digest checked or replaced. Each
        repeated field is read once (every read makes a container), and an empty one is not copied."""
        vms, gone, delta = request.vms, request.gone_vm_ids, request.delta
        validation_reports.heartbeat_lists([vm.vm_id for vm in vms] if vms else (), list(gone) if gone else (),
                                           delta, request.vm_count)
        node = await self.core.nodes.heartbeat(reported.node)
        self._on_agent_start(reported.node)  # the record carries what the agent reports of its start
        seen = await self._apply_reports(node.id, vms, delta, reported.beat) if vms else []
        digests = self.core.nodes.digests
        resync = False
        if delta:
            resync = not digests.delta(node.id, seen, gone, request.digest, request.vm_count)
        else:
            digests.full(node.id, seen)
        return self._answer(node, reported.digest, resync)

    async def _apply_reports(self, node_id: str, vms: Any, delta: bool, beat: int) -> list[tuple[str, bytes]]:
        """The VM reports of a heartbeat applied to their records; returns (VM id, report) of each, for
        the node's digest. Of a full heartbeat (every VM of the node), those whose record no report
        changes are skipped unread."""
        seen: list[tuple[str, bytes]] = []
        settled = frozenset() if delta else reports.settled(self.core, node_id)
        for vm in vms:
            # the report's wire form identifies it: an unchanged one is skipped before it is decoded
            report = report_bytes(vm.status)
            seen.append((vm.vm_id, report_bytes(vm)))  # the digest covers the whole report (exit kind too)
            if vm.vm_id in settled or self.core.reports.unchanged(vm.vm_id, node_id, report):
                continue
            observed = from_proto(VmStatus, vm.status)
            kind = enum_from_proto(ExitKind, vm.exit_kind, agent_pb2.VmExitKind.DESCRIPTOR, "vms.exit_kind")
            await reports.on_heartbeat_vm(self.core, node_id, vm.vm_id, observed, beat, report, kind)
        return seen

    def _answer(self, node: Node, digest: int, resync: bool) -> agent_pb2.HeartbeatResponse:
        """The answer to one heartbeat; the same message again while the node's state and digest stay the
        same (gRPC serializes it at each send; nothing changes it)."""
        if resync:
            return agent_pb2.HeartbeatResponse(heartbeat_interval_seconds=self.heartbeat_interval,
                                               node_state=_STATES[node.state], resync=True, node_digest=digest)
        key = (node.state, digest)
        kept = self._answers.get(node.id)
        if kept is None or kept[0] != key:
            if len(self._answers) >= ReportedNodes.LIMIT:
                self._answers.clear()
            answer = agent_pb2.HeartbeatResponse(heartbeat_interval_seconds=self.heartbeat_interval,
                                                 node_state=_STATES[node.state], node_digest=digest)
            kept = self._answers[node.id] = (key, answer)
        return kept[1]

    @unary
    async def ReportStatus(self, request: agent_pb2.ReportStatusRequest, context: Ctx) -> Any:
        validation.name(request.node_id, "node_id")
        self._speaks_for(context, request.node_id, "node_id")
        vm_id = validation.vm_id(request.report.vm_id, "report.vm_id")
        kind = enum_from_proto(ExitKind, request.report.exit_kind, agent_pb2.VmExitKind.DESCRIPTOR)
        observed = from_proto(VmStatus, request.report.status)
        if kind is not None:
            await reports.on_exit(self.core, request.node_id, vm_id, kind, observed)
        else:
            await reports.on_status(self.core, request.node_id, vm_id, observed)
        return types_pb2.Empty()


answer_unserved(AgentReportServicer, agent_pb2.DESCRIPTOR.services_by_name["AgentService"], ON_AGENT)
