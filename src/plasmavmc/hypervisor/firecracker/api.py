"""A thin async client for Firecracker's HTTP API on its unix socket (our own; no PyPI package).

One request per connection (`Connection: close`): the API is used for a handful of calls per VM
lifetime, so keep-alive buys nothing and a fresh connection never sees a half-read response. The one
exception is `put_all` (a pooled Firecracker's boot, `api_boot.py`): its PUTs go out together on one
connection, pipelined (HTTP/1.1; Firecracker answers them in order), one round trip instead of one each. Bodies
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
        try:
            await asyncio.wait_for(self._pipelined(requests), self.timeout)
        except TimeoutError as exc:
            raise HypervisorError(f"firecracker API: {len(requests)} PUTs not answered in {self.timeout:.0f}s") from exc

    async def _pipelined(self, requests: list[tuple[str, dict[str, Any]]]) -> None:
        payload = b"".join(_encode("PUT", path, body, keep_alive=True) for path, body in requests)
        try:
            with _reachable(self.socket_path) as address:
                reader, writer = await asyncio.open_unix_connection(address)
            try:
                writer.write(payload)
                await writer.drain()
                for path, _ in requests:
                    _parse_response("PUT", path, await _read_response(reader))
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise HypervisorError(f"firecracker API: pipelined PUTs: {exc}") from exc

    async def request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._request(method, path, body), self.timeout)
        except TimeoutError as exc:
            raise HypervisorError(f"firecracker API {method} {path}: no answer in {self.timeout:.0f}s") from exc

    async def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            with _reachable(self.socket_path) as address:
                reader, writer = await asyncio.open_unix_connection(address)
            try:
                writer.write(_encode(method, path, body, keep_alive=False))
                await writer.drain()
                raw = await reader.read(_MAX_RESPONSE)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except OSError as exc:
            raise HypervisorError(f"firecracker API {method} {path}: {exc}") from exc
        return _parse_response(method, path, raw)


def _encode(method: str, path: str, body: dict[str, Any] | None, *, keep_alive: bool) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\nContent-Length: {len(payload)}\r\n")
    if body is not None:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + payload


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One response of a kept-alive connection: its head, then as many body bytes as it announces."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or b"0")
    if not 0 <= length <= _MAX_RESPONSE:
        raise HypervisorError(f"firecracker API: response of {length} bytes")
    return head + (await reader.readexactly(length) if length else b"")


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
