"""`Endpoints`: the servers one client may talk to, a channel to each, and which one it uses now.

Every replica of the control plane serves the whole API, so a client given several endpoints uses one
(the *current*) and moves to the next when the current cannot be reached (a transport-level
UNAVAILABLE: refused, reset, unresolvable). A full round of endpoints that all failed is followed by a
short pause (`ROUND_BACKOFF`, doubled per round) before the next, for `FAIL_OVER_ROUNDS` rounds.

Channels are opened lazily with a short gRPC reconnect backoff (`wire/channels.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from plasmavmc.wire.channels import RECONNECT_OPTIONS

log = logging.getLogger(__name__)

FAIL_OVER_ROUNDS = 3
ROUND_BACKOFF = 0.1  # seconds after a round in which every endpoint failed; doubled per round


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


def split_endpoints(addrs: str | Sequence[str]) -> list[str]:
    """One address, a comma-separated list, or a sequence of either → the endpoint list (in order, no
    blanks, no repeats); ValueError when nothing is left."""
    items = [addrs] if isinstance(addrs, str) else list(addrs)
    out: list[str] = []
    for item in items:
        for part in item.split(","):
            if (addr := part.strip()) and addr not in out:
                out.append(addr)
    if not out:
        raise ValueError("no server address given")
    return out


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
        return grpc.aio.secure_channel(target, (tls or ClientTls()).credentials(), options=RECONNECT_OPTIONS)
    return grpc.aio.insecure_channel(target, options=RECONNECT_OPTIONS)


class Endpoints:
    """The endpoint list of one client, its channels (opened on first use) and the current one."""

    def __init__(self, addrs: str | Sequence[str], tls: ClientTls | None = None) -> None:
        self.addrs = split_endpoints(addrs)
        for addr in self.addrs:
            parse_addr(addr, tls)  # a malformed address is refused now, not at the first call
        self._tls = tls
        self._channels: dict[int, Any] = {}
        self.current = 0
        self.answered: str | None = None  # the endpoint that gave the last answer

    @property
    def attempts(self) -> int:
        """How many calls one operation may try: every endpoint, `FAIL_OVER_ROUNDS` times."""
        return FAIL_OVER_ROUNDS * len(self.addrs)

    def channel(self, index: int) -> Any:
        if index not in self._channels:
            self._channels[index] = open_channel(self.addrs[index], self._tls)
        return self._channels[index]

    def fail_over(self, index: int) -> None:
        """Move on from endpoint `index` (unless a concurrent call already did)."""
        if self.current == index:
            self.current = (index + 1) % len(self.addrs)
            if len(self.addrs) > 1:
                log.info("cannot reach %s; trying %s", self.addrs[index], self.addrs[self.current])

    async def pause(self, attempt: int) -> None:
        """After failed attempt number `attempt` (0-based): wait a little once a whole round failed."""
        if (attempt + 1) % len(self.addrs) == 0:
            await asyncio.sleep(ROUND_BACKOFF * 2 ** (attempt // len(self.addrs)))

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
