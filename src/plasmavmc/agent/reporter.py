"""The agent's line to the control plane: heartbeats and ReportStatus, over every configured endpoint.

Heartbeats go over one stream per node (`heartbeat_lines.py`) to the endpoint that last answered, and as
unary Heartbeat calls (tried over every endpoint) whenever that stream is down or not served.

Endpoints are tried in order, starting from the last one that answered, so an agent keeps reporting
while any control-plane replica is up. A report that cannot be delivered is retried with backoff by
the caller; heartbeats carry every VM's status (or its changes, with a periodic full resync:
`heartbeats.py`), so nothing a lost report said is lost for good.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc

from plasmavmc.agent.heartbeat_lines import Lines
from plasmavmc.errors import Unavailable
from plasmavmc.grpc_tls import target_of
from plasmavmc.types.node import Node
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.vm import VmStatus
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, node_pb2, types_pb2
from plasmavmc.wire.channels import RECONNECT_OPTIONS
from plasmavmc.wire.convert import enum_to_proto, to_proto
from plasmavmc.wire.status import from_rpc_error

log = logging.getLogger(__name__)
TIMEOUT = 10.0


def vm_report(vm_id: str, status: VmStatus, exit_kind: ExitKind | None = None) -> agent_pb2.VmReport:
    kind = 0 if exit_kind is None else enum_to_proto(exit_kind, agent_pb2.VmExitKind.DESCRIPTOR)
    return agent_pb2.VmReport(vm_id=vm_id, status=to_proto(status, types_pb2.VmStatus()), exit_kind=kind)  # type: ignore[arg-type]


class Reporter:
    def __init__(self, endpoints: Sequence[str], credentials: grpc.ChannelCredentials | None = None,
                 streams: bool = True) -> None:
        """`streams`: heartbeats over `HeartbeatStream` (False: unary Heartbeat calls only)."""
        targets = [target_of(e) for e in endpoints]
        self.channels = [
            grpc.aio.secure_channel(t, credentials, options=RECONNECT_OPTIONS)
            if credentials
            else grpc.aio.insecure_channel(t, options=RECONNECT_OPTIONS)
            for t in targets
        ]
        self._stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in self.channels]
        self._preferred = 0
        self.streams = streams
        self.lines = Lines(self._stubs)

    async def _call(self, method: str, request: object) -> object:
        last: Exception | None = None
        for i in range(len(self._stubs)):
            index = (self._preferred + i) % len(self._stubs)
            try:
                result = await getattr(self._stubs[index], method)(request, timeout=TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                err = from_rpc_error(exc)
                if not isinstance(err, Unavailable):
                    raise err from None
                last = err
                continue
            self._preferred = index
            return result
        raise Unavailable(f"no control plane reachable: {last}")

    async def heartbeat(self, node: Node, request: agent_pb2.HeartbeatRequest,
                        node_digest: int = 0) -> agent_pb2.HeartbeatResponse:
        """Send `request` (its VM part: `agent/heartbeats.py`) with `node` filled in (`node_digest`: only
        its id and time, with that digest): over the node's heartbeat stream (`heartbeat_lines.py`), or
        as a unary Heartbeat when there is none to use."""
        if node_digest:
            request.node.id, request.node.last_heartbeat = node.id, node.last_heartbeat
            request.node_digest = node_digest
        else:
            request.node.CopyFrom(to_proto(node, node_pb2.Node()))
        streamed = await self.lines.send(node.id, self._preferred, request) if self.streams else None
        response = streamed if streamed is not None else await self._call("Heartbeat", request)
        assert isinstance(response, agent_pb2.HeartbeatResponse)
        return response

    async def report(self, node_id: str, report: agent_pb2.VmReport) -> None:
        await self._call("ReportStatus", agent_pb2.ReportStatusRequest(node_id=node_id, report=report))

    async def close(self) -> None:
        await self.lines.close()
        for channel in self.channels:
            await channel.close()
