"""`EtcdConnection`: gRPC channels to the members of one etcd cluster, with fail-over between them.

It owns the endpoint list (`http://host:port` or `https://...` URLs, spec §9.1 `chainfire_endpoints`),
client TLS, per-call deadlines and the translation of gRPC failures into our error tree.

One channel per endpoint, created lazily; calls go to the *current* endpoint. When a call fails with
UNAVAILABLE (the member is down or the connection dropped) or DEADLINE_EXCEEDED (a member stuck in an
election, a partition) the connection moves on to the next endpoint and the call is retried, a bounded
number of times with an exponential backoff. etcd members forward writes to their leader, so any live
member serves any request.

Retrying a write whose reply was lost is safe for this store's writes: unconditional puts and deletes
are idempotent, and every compare-and-swap carries an op id (`EtcdStore`), so a resend of one that had
in fact been applied recognises its own success instead of failing its own compare.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import grpc
import grpc.aio

from plasmavmc.errors import InvalidArgument, StoreError
from plasmavmc.store.etcdpb import rpc_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_CALL_TIMEOUT = 5.0
RETRY_BACKOFF = 0.1  # seconds between attempts on successive endpoints; doubled per full round


@dataclass(frozen=True)
class EtcdTls:
    """Client TLS towards etcd: a CA bundle, and a client certificate + key for mutual TLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


@dataclass(frozen=True)
class Endpoint:
    target: str  # host:port for gRPC
    secure: bool


def parse_endpoint(url: str) -> Endpoint:
    """`http://h:p` or `https://h:p` (a bare `h:p` means http) → an `Endpoint`; anything else is refused."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise InvalidArgument("endpoints", f"{url!r} is not an etcd URL like http://127.0.0.1:2379")
    try:
        port = parts.port or 2379
    except ValueError as exc:
        raise InvalidArgument("endpoints", f"{url!r} has an invalid port") from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Endpoint(target=f"{host}:{port}", secure=parts.scheme == "https")


class Stubs:
    """The etcd services on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)


class EtcdConnection:
    """Channels to every endpoint of one etcd cluster; `call` runs an RPC with fail-over."""

    def __init__(
        self, endpoints: Sequence[str], *, tls: EtcdTls | None = None, timeout: float = DEFAULT_CALL_TIMEOUT
    ) -> None:
        if not endpoints:
            raise InvalidArgument("endpoints", "at least one etcd endpoint is needed")
        self._endpoints = [parse_endpoint(url) for url in endpoints]
        self._tls = tls
        self.timeout = timeout
        self._stubs: dict[int, Stubs] = {}
        self._current = 0
        self._closed = False

    @property
    def current_endpoint(self) -> str:
        """The `host:port` of the member calls go to now."""
        return self._endpoints[self._current].target

    @property
    def endpoint_count(self) -> int:
        return len(self._endpoints)

    def stubs(self) -> tuple[int, Stubs]:
        """The current endpoint's index and stubs (its channel is opened on first use)."""
        if self._closed:
            raise StoreError("etcd connection is closed")
        index = self._current
        if index not in self._stubs:
            self._stubs[index] = Stubs(self._open_channel(self._endpoints[index]))
        return index, self._stubs[index]

    def _open_channel(self, endpoint: Endpoint) -> grpc.aio.Channel:
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if endpoint.secure or self._tls is not None:
            creds = (self._tls or EtcdTls()).credentials()
            return grpc.aio.secure_channel(endpoint.target, creds, options=options)
        return grpc.aio.insecure_channel(endpoint.target, options=options)

    def fail_over(self, failed_index: int) -> None:
        """Move to the next endpoint, unless another caller already moved away from `failed_index`."""
        if self._current == failed_index:
            self._current = (failed_index + 1) % len(self._endpoints)
            log.info(
                "etcd: endpoint %s failed; trying %s",
                self._endpoints[failed_index].target,
                self._endpoints[self._current].target,
            )

    async def call(self, rpc: Callable[[Stubs, float], Awaitable[T]], what: str) -> T:
        """`rpc(stubs, timeout)` on the current endpoint, failing over on UNAVAILABLE; errors → StoreError."""
        rounds = 3
        attempts = rounds * len(self._endpoints)
        for attempt in range(attempts):
            index, stubs = self.stubs()
            try:
                return await rpc(stubs, self.timeout)
            except grpc.aio.AioRpcError as exc:
                if not is_retryable(exc) or attempt == attempts - 1:
                    raise translate(exc, what) from exc
                self.fail_over(index)
                await asyncio.sleep(RETRY_BACKOFF * (2 ** (attempt // len(self._endpoints))))
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        channels, self._stubs = list(self._stubs.values()), {}
        for stubs in channels:
            await stubs.channel.close()


def translate(exc: grpc.aio.AioRpcError, what: str) -> StoreError:
    """A gRPC failure of etcd → `StoreError` (retryable unless etcd refused the request itself)."""
    error = StoreError(f"etcd {what}: {exc.code().name}: {exc.details()}")
    if exc.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
    ):
        error.retryable = False
    return error


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


def is_retryable(exc: grpc.aio.AioRpcError) -> bool:
    """A failure another member (or a moment later) may not have: down, dropped, or timed out."""
    return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
