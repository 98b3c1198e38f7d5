"""The plumbing every `PlasmaClient` service mixin shares: stubs, call metadata, fail-over, errors.

Each service mixin (`vms.py`, `nodes.py`, `images.py`, `quotas.py`, `networks.py`) only builds requests and converts
responses; it names an RPC as `self._vm_stub.CreateVm` (an `Rpc`: service and method, not yet bound to a
channel) and calls it through `_unary` / `_stream` here, which run it on the current endpoint and move
to the next one (`endpoints.py`) while the server cannot be reached — a stream only before its first
message. Every failure — including one raised half-way through a server stream — reaches the caller as
our own `PlasmaError` (`VmNotFound`, `InvalidState`, …) rebuilt by `wire.status.from_rpc_error`, never as
a raw `grpc.aio.AioRpcError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

from plasmavmc.client.endpoints import ClientTls, Endpoints, open_channel, parse_addr
from plasmavmc.errors import PlasmaError, Unavailable
from plasmavmc.v1 import (
    iam_pb2_grpc,
    image_pb2_grpc,
    network_pb2_grpc,
    node_pb2_grpc,
    quota_pb2_grpc,
    vm_pb2_grpc,
)
from plasmavmc.wire.status import from_rpc_error

__all__ = ["ClientBase", "ClientTls", "ConnectionFailed", "Endpoints", "Rpc", "open_channel", "parse_addr"]

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ConnectionFailed(Unavailable):
    """The server could not be reached at all (refused, unresolvable, TLS handshake failed).

    Distinguished from a server-sent UNAVAILABLE (an agent or the store being down) by the absence of our
    status details: a status produced by the transport carries none. `reason` keeps gRPC's own words.
    """

    def __init__(self, addr: str, reason: str) -> None:
        super().__init__(f"cannot reach {addr}")
        self.addr = addr
        self.reason = reason


_READ_ONLY = ("Get", "List", "Watch", "Download")
_NEVER_SENT = ("failed to connect", "connection refused", "dns resolution failed", "name resolution")


def resendable(rpc: Rpc, error: ConnectionFailed) -> bool:
    """Whether `rpc` may go to the next endpoint after `error`: a read always may; a change only when the
    request surely never reached a server (refused, unresolvable) — a connection dropped mid-call may
    have carried it, and sending it again would answer ALREADY_EXISTS or INVALID_STATE for its own
    success, so that failure is the caller's answer (the next call uses the next endpoint)."""
    reason = error.reason.lower()
    return rpc.method.startswith(_READ_ONLY) or any(words in reason for words in _NEVER_SENT)


@dataclass(frozen=True)
class Rpc:
    """One RPC of one service, bound to a channel only when it is called."""

    stub: Any  # the generated stub class, e.g. `vm_pb2_grpc.VmServiceStub`
    method: str


class _Service:
    """`service.Method` → `Rpc(stub, "Method")`."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub

    def __getattr__(self, method: str) -> Rpc:
        return Rpc(self._stub, method)


class ClientBase:
    """State shared by the service mixins: the endpoints, the services, metadata and the call helpers."""

    _vm_stub = _Service(vm_pb2_grpc.VmServiceStub)
    _node_stub = _Service(node_pb2_grpc.NodeServiceStub)
    _image_stub = _Service(image_pb2_grpc.ImageServiceStub)
    _quota_stub = _Service(quota_pb2_grpc.QuotaServiceStub)
    _iam_stub = _Service(iam_pb2_grpc.IamServiceStub)
    _network_stub = _Service(network_pb2_grpc.NetworkServiceStub)
    _sg_stub = _Service(network_pb2_grpc.SecurityGroupServiceStub)

    def __init__(self, endpoints: Endpoints, *, token: str | None = None, call_timeout: float | None = None) -> None:
        self._endpoints = endpoints
        self._timeout = call_timeout
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._stubs: dict[tuple[int, Any], Any] = {}

    @property
    def addr(self) -> str:
        """The endpoint this client uses now."""
        return self._endpoints.addrs[self._endpoints.current]

    @property
    def endpoints(self) -> list[str]:
        """Every endpoint this client may use, in order."""
        return list(self._endpoints.addrs)

    @property
    def answered_by(self) -> str | None:
        """The endpoint that gave the last answer (None before any)."""
        return self._endpoints.answered

    def _bind(self, rpc: Rpc) -> tuple[int, Any]:
        """The current endpoint's index and `rpc` bound to its channel."""
        index = self._endpoints.current
        if (index, rpc.stub) not in self._stubs:
            self._stubs[(index, rpc.stub)] = rpc.stub(self._endpoints.channel(index))
        return index, getattr(self._stubs[(index, rpc.stub)], rpc.method)

    def _error(self, exc: grpc.aio.AioRpcError, index: int) -> PlasmaError:
        keys = {key for key, _ in (exc.trailing_metadata() or ())}
        if exc.code() == grpc.StatusCode.UNAVAILABLE and _STATUS_DETAILS_KEY not in keys:
            return ConnectionFailed(self._endpoints.addrs[index], exc.details() or "")
        return from_rpc_error(exc)

    async def _failed(self, rpc: Rpc, error: PlasmaError, index: int, attempt: int) -> None:
        """Move on from an unreachable endpoint; raise `error` unless `rpc` may be sent again (below)
        and attempts are left."""
        if not isinstance(error, ConnectionFailed):
            raise error
        self._endpoints.fail_over(index)
        if attempt >= self._endpoints.attempts - 1 or not resendable(rpc, error):
            raise error
        await self._endpoints.pause(attempt)

    async def _unary(self, rpc: Rpc, request: Message) -> Any:
        """Call a unary RPC, failing over while the server is unreachable; a failure is raised as the
        `PlasmaError` it carries."""
        for attempt in range(self._endpoints.attempts):
            index, call = self._bind(rpc)
            try:
                reply = await call(request, metadata=self._metadata, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                await self._failed(rpc, self._error(exc, index), index, attempt)
                continue
            self._endpoints.answered = self._endpoints.addrs[index]
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stream(self, rpc: Rpc, request: Message) -> AsyncIterator[Any]:
        """Iterate a server-streaming RPC (failing over until its first message); closing the iterator
        early cancels the call."""
        for attempt in range(self._endpoints.attempts):
            index, bound = self._bind(rpc)
            call = bound(request, metadata=self._metadata)
            started = False
            try:
                async for message in call:
                    if not started:
                        started, self._endpoints.answered = True, self._endpoints.addrs[index]
                    yield message
                return
            except grpc.aio.AioRpcError as exc:
                error = self._error(exc, index)
                if started:
                    raise error from None
                await self._failed(rpc, error, index, attempt)
            finally:
                call.cancel()
