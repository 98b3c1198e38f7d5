"""URL imports without server-side request forgery: whom an image URL may make this server talk to.

A URL import makes the control plane open a connection of the caller's choosing, so each hop is judged
before any byte is sent (`UrlPolicy`):

- only http and https;
- the host name is resolved once; every address it resolves to must be allowed, and the connection is
  pinned to the first of them (aiohttp's resolver is replaced by one that answers only that address, so
  a second, different DNS answer — DNS rebinding — is never used; TLS still verifies the name);
- refused unless globally routable: loopback, link-local, private, shared, multicast, unspecified and
  reserved addresses, and every address of this host (its own listeners), unless an explicit
  `[images] url_allow_cidrs` block contains it;
- redirects are followed by hand, each new location judged the same way, at most `max_redirects`;
- a time bound on the whole download and a size bound on the body.

Every refusal is INVALID_ARGUMENT naming `source.url.url`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from plasmavmc.errors import InvalidArgument

FIELD = "source.url.url"
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 1024 * 1024


def local_addresses() -> frozenset[IpAddress]:
    """Every address of this host (the kernel's local routes; IPv6 from /proc/net/if_inet6)."""
    found: set[IpAddress] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for prev, line in itertools.pairwise(lines):
            if "/32 host LOCAL" in line:
                found.add(ipaddress.ip_address(prev.split()[-1]))
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            found.add(ipaddress.ip_address(":".join(line[i:i + 4] for i in range(0, 32, 4))))
    except (OSError, ValueError):
        pass
    return frozenset(found)


@dataclass(frozen=True)
class UrlPolicy:
    allow: tuple[IpNetwork, ...] = ()
    own: frozenset[IpAddress] = frozenset()
    timeout_s: float = 3600.0
    max_redirects: int = 5
    max_bytes: int = 256 * 1024**3

    @classmethod
    def of(cls, allow_cidrs: Iterable[str], timeout_s: float, max_redirects: int, max_bytes: int) -> UrlPolicy:
        allow = tuple(ipaddress.ip_network(c, strict=False) for c in allow_cidrs)
        return cls(allow, local_addresses(), timeout_s, max_redirects, max_bytes)

    def refusal(self, addr: IpAddress) -> str | None:
        """Why `addr` may not be reached, or None if it may."""
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self.allow):
            return None
        if addr in self.own:
            return "is an address of this server"
        if addr.is_multicast or not addr.is_global:
            return "is not a public address (loopback, link-local, private, multicast or reserved)"
        return None


def split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or INVALID_ARGUMENT."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidArgument(FIELD, f"{url[:200]!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(FIELD, "must be an http:// or https:// URL with a host")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(url: str, policy: UrlPolicy) -> ResolveResult:
    """Resolve the URL's host once and judge every address; the first is the one to connect to."""
    _, host, port = split(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidArgument(FIELD, f"cannot resolve {host[:100]!r}: {exc}") from None
    if not infos:
        raise InvalidArgument(FIELD, f"{host[:100]!r} has no address")
    for _, _, _, _, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if why := policy.refusal(addr):
            raise InvalidArgument(FIELD, f"{host[:100]} resolves to {addr}, which {why}: refused "
                                         "([images] url_allow_cidrs lists exceptions)")
    family, _, proto, _, sockaddr = infos[0]
    return ResolveResult(hostname=host, host=str(sockaddr[0]), port=port, family=family, proto=proto,
                         flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)


class _Pinned(AbstractResolver):
    """A resolver that knows one answer: the address `resolve()` judged."""

    def __init__(self, answer: ResolveResult) -> None:
        self.answer = answer

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host != self.answer["hostname"]:
            raise OSError(f"{host} was not checked")
        return [self.answer]

    async def close(self) -> None:
        return None


async def _hop(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    return await session.get(url, allow_redirects=False)


async def download(url: str, policy: UrlPolicy) -> AsyncIterator[bytes]:
    """The body of `url` in chunks, every hop judged by `policy` (see the module docstring)."""
    timeout = aiohttp.ClientTimeout(total=policy.timeout_s, sock_connect=30)
    try:
        async with asyncio.timeout(policy.timeout_s):
            for _ in range(policy.max_redirects + 1):
                pinned = _Pinned(await resolve(url, policy))
                connector = aiohttp.TCPConnector(resolver=pinned, use_dns_cache=False, force_close=True)
                async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session, \
                        await _hop(session, url) as resp:
                    if resp.status in REDIRECTS and "Location" in resp.headers:
                        url = urljoin(url, resp.headers["Location"])
                        continue
                    if resp.status // 100 != 2:
                        raise InvalidArgument(FIELD, f"{url[:200]} answered HTTP {resp.status}")
                    if (resp.content_length or 0) > policy.max_bytes:
                        raise InvalidArgument(FIELD, f"{url[:200]} is larger than {policy.max_bytes} bytes")
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        yield chunk
                    return
    except TimeoutError:
        raise InvalidArgument(FIELD, f"{url[:200]} did not finish within {policy.timeout_s:.0f} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise InvalidArgument(FIELD, f"cannot download {url[:200]}: {exc}") from exc
    raise InvalidArgument(FIELD, f"more than {policy.max_redirects} redirects")
