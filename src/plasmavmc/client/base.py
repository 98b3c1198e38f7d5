"""The plumbing every `PlasmaClient` service mixin shares: channel set-up, call metadata, error translation.

Each service mixin (`vms.py`, `nodes.py`, `images.py`) only builds requests and converts responses; it
calls RPCs through `_unary` / `_stream` here, so that every failure — including one raised half-way
through a server stream — reaches the caller as our own `PlasmaError` (`VmNotFound`, `InvalidState`, …)
rebuilt by `api.status.from_rpc_error`, never as a raw `grpc.aio.AioRpcError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

from plasmavmc.errors import PlasmaError, Unavailable
from plasmavmc.v1 import image_pb2_grpc, node_pb2_grpc, vm_pb2_grpc
from plasmavmc.wire.status import from_rpc_error

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class ClientTls:
    """PEM files for a TLS channel: the CA that signed the server, and our own cert/key for mTLS.

    `ca_file=None` trusts the system roots; `cert_file`/`key_file` go together (both or neither).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> Any:
        """The `grpc.ChannelCredentials` these files describe; raises OSError if one is unreadable."""
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("TLS client certificate and key must be given together")
        ca = Path(self.ca_file).read_bytes() if self.ca_file else None
        key = Path(self.key_file).read_bytes() if self.key_file else None
        cert = Path(self.cert_file).read_bytes() if self.cert_file else None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


class ConnectionFailed(Unavailable):
    """The server could not be reached at all (refused, unresolvable, TLS handshake failed).

    Distinguished from a server-sent UNAVAILABLE (an agent or the store being down) by the absence of our
    status details: a status produced by the transport carries none. `reason` keeps gRPC's own words.
    """

    def __init__(self, addr: str, reason: str) -> None:
        super().__init__(f"cannot reach {addr}")
        self.addr = addr
        self.reason = reason


def parse_addr(addr: str, tls: ClientTls | None) -> tuple[str, bool]:
    """`http://h:p` / `https://h:p` / `h:p` -> (gRPC target, secure?). TLS files force a secure channel."""
    addr = addr.strip()
    secure = tls is not None
    if addr.startswith("https://"):
        target, secure = addr.removeprefix("https://"), True
    elif addr.startswith("http://"):
        target = addr.removeprefix("http://")
    else:
        target = addr
    target = target.rstrip("/")
    if not target:
        raise ValueError(f"invalid server address {addr!r}")
    return target, secure


def open_channel(addr: str, tls: ClientTls | None) -> Any:
    """A lazily connecting `grpc.aio.Channel` to `addr` (no I/O happens until the first call)."""
    target, secure = parse_addr(addr, tls)
    if secure:
        return grpc.aio.secure_channel(target, (tls or ClientTls()).credentials())
    return grpc.aio.insecure_channel(target)


class ClientBase:
    """State shared by the service mixins: the channel, the three stubs, metadata and the call helpers."""

    def __init__(
        self, channel: Any, addr: str, *, token: str | None = None, call_timeout: float | None = None
    ) -> None:
        self._channel = channel
        self._addr = addr
        self._timeout = call_timeout
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._vm_stub: Any = vm_pb2_grpc.VmServiceStub(channel)
        self._node_stub: Any = node_pb2_grpc.NodeServiceStub(channel)
        self._image_stub: Any = image_pb2_grpc.ImageServiceStub(channel)

    @property
    def addr(self) -> str:
        """The address this client was connected to, as given."""
        return self._addr

    def _error(self, exc: grpc.aio.AioRpcError) -> PlasmaError:
        keys = {key for key, _ in (exc.trailing_metadata() or ())}
        if exc.code() == grpc.StatusCode.UNAVAILABLE and _STATUS_DETAILS_KEY not in keys:
            return ConnectionFailed(self._addr, exc.details() or "")
        return from_rpc_error(exc)

    async def _unary(self, rpc: Any, request: Message) -> Any:
        """Call a unary RPC; a failure is raised as the `PlasmaError` it carries."""
        try:
            return await rpc(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    async def _stream(self, rpc: Any, request: Message) -> AsyncIterator[Any]:
        """Iterate a server-streaming RPC; closing the iterator early cancels the call."""
        call = rpc(request, metadata=self._metadata)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()
