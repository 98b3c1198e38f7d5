"""A thin async client for Firecracker's HTTP API on its unix socket (our own; no PyPI package).

One request per connection (`Connection: close`): the API is used for a handful of calls per VM
lifetime, so keep-alive buys nothing and a fresh connection never sees a half-read response. The one
exception is `put_all` (a pooled Firecracker's boot, `api_boot.py`): its PUTs go out together on one
connection, pipelined (HTTP/1.1; Firecracker answers them in order), one round trip instead of one each.
A connection is a plain non-blocking socket (`_Connection`), connected and written before the caller's
task first yields: Firecracker has a request the moment it is asked for. Bodies
are JSON; Firecracker answers errors with `{"fault_message": ...}`, which becomes the `HypervisorError`
text. The socket path of a jailed VM is deep under the runtime dir and may exceed the 108-byte
`sun_path` limit, so long paths are reached through `/proc/self/fd/<dirfd>/<name>` of an `O_PATH`
descriptor on their directory.

Endpoints used (Firecracker v1.x API): PUT /actions (SendCtrlAltDel, FlushMetrics), /snapshot/create,
/snapshot/load; PATCH /vm (Paused/Resumed), /balloon; GET / (instance info). A boot is configured by
`--config-file` at exec instead (the same bodies, `spec.vm_config`), so it makes no PUT at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor import fswait

_SUN_PATH_MAX = 100
_TIMEOUT_S = 30.0
_MAX_RESPONSE = 1 << 20
_REFUSED_RETRY_S = 0.001


@contextlib.contextmanager
def _reachable(path: Path) -> Iterator[str]:
    """A path to `path` that fits in a sockaddr_un."""
    if len(str(path)) < _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class FirecrackerApi:
    """Requests to one Firecracker process; every call opens and closes its own connection."""

    def __init__(self, socket_path: Path, timeout: float = _TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    async def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, body)

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body)

    async def get(self, path: str = "/") -> dict[str, Any]:
        return await self.request("GET", path, None)

    async def action(self, action_type: str) -> None:
        await self.put("/actions", {"action_type": action_type})

    async def put_all(self, requests: list[tuple[str, dict[str, Any]]]) -> None:
        """PUT each (path, body) in order, pipelined on one connection; the first failure raises."""
        payload = b"".join(_encode("PUT", path, body, keep_alive=True) for path, body in requests)
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: its task would cost the send loop turns
                with await _Connection.open(self.socket_path, payload) as conn:
                    for path, _ in requests:
                        _parse_response("PUT", path, await conn.response())
        except TimeoutError as exc:
            raise HypervisorError(f"firecracker API: {len(requests)} PUTs not answered in {self.timeout:.0f}s") from exc
        except OSError as exc:
            raise HypervisorError(f"firecracker API: pipelined PUTs: {exc}") from exc

    async def request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                with await _Connection.open(self.socket_path, _encode(method, path, body, keep_alive=False)) as conn:
                    raw = await conn.response()
        except TimeoutError as exc:
            raise HypervisorError(f"firecracker API {method} {path}: no answer in {self.timeout:.0f}s") from exc
        except OSError as exc:
            raise HypervisorError(f"firecracker API {method} {path}: {exc}") from exc
        return _parse_response(method, path, raw)


class _Connection:
    """One connection to the API socket, its requests sent as it opens: a unix socket's connect and a
    small send complete at once, so Firecracker has them before the caller's task yields (no transport
    or stream objects between, whose setup took loop turns). Responses are read through the loop."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    @classmethod
    async def open(cls, path: Path, payload: bytes) -> _Connection:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            with _reachable(path) as address:
                await loop.sock_connect(sock, address)  # returns without a loop turn once connected
            await loop.sock_sendall(sock, payload)  # likewise once all is sent
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self._sock.close()

    async def response(self) -> bytes:
        """The next response: its head, then as many body bytes as it announces."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            await self._more()
        whole = end + 4 + _content_length(self._buffer[:end + 4])
        while len(self._buffer) < whole:
            await self._more()
        raw, self._buffer = self._buffer[:whole], self._buffer[whole:]
        return raw

    async def _more(self) -> None:
        if len(self._buffer) > _MAX_RESPONSE:
            raise HypervisorError(f"firecracker API: response over {_MAX_RESPONSE} bytes")
        data = await asyncio.get_running_loop().sock_recv(self._sock, 65536)
        if not data:
            raise HypervisorError("firecracker API: connection closed before the whole response")
        self._buffer += data


def _content_length(head: bytes) -> int:
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = int(value.strip() or b"0")
            except ValueError:
                raise HypervisorError(f"firecracker API: bad Content-Length {value.strip()!r}") from None
    if not 0 <= length <= _MAX_RESPONSE:
        raise HypervisorError(f"firecracker API: response of {length} bytes")
    return length


def _encode(method: str, path: str, body: dict[str, Any] | None, *, keep_alive: bool) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\nContent-Length: {len(payload)}\r\n")
    if body is not None:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + payload


def _parse_response(method: str, path: str, raw: bytes) -> dict[str, Any]:
    head, _, content = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HypervisorError(f"firecracker API {method} {path}: malformed response {status_line!r}")
    status = int(parts[1])
    data: dict[str, Any] = {}
    if content.strip():
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = {"fault_message": content.decode(errors="replace")}
        data = parsed if isinstance(parsed, dict) else {"value": parsed}
    if status >= 300:
        fault = data.get("fault_message") or status_line
        raise HypervisorError(f"firecracker API {method} {path} failed ({status}): {fault}")
    return data


async def wait_for_socket(api: FirecrackerApi, alive: Callable[[], bool], within_s: float) -> float:
    """Until the API answers GET / (returns seconds waited); `alive()` false aborts. The socket's creation
    wakes the wait (inotify, `fswait`); between its bind and listen a connection is refused, so that short
    window is retried every millisecond. Launched with `--config-file`, Firecracker answers only once the
    VM is configured and started, so the answer also means the VM runs."""
    started = time.monotonic()
    deadline = started + within_s
    await fswait.created(api.socket_path, within_s, alive)
    while True:
        try:
            await api.get("/")
            return time.monotonic() - started
        except HypervisorError as exc:
            if not alive():
                raise HypervisorError("firecracker exited before its API answered") from exc
            if time.monotonic() > deadline:
                raise HypervisorError(f"firecracker API not ready in {within_s:.0f}s: {exc.message}") from exc
        await asyncio.sleep(_REFUSED_RETRY_S)  # poll-with-deadline: bound, not listening yet
