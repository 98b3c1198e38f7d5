"""The client side of the interactive console gateway (`server/console_ws.py`): one WebSocket session.

    async with open_console("http://host:8083", org, project, vm, ticket=t) as console:
        await console.send(b"uname -a\\n")
        async for chunk in console: ...

The gateway has its own port (``[server] console_addr``, default 8083). It needs a credential allowing
``plasmavmc:vms:console`` on the VM: a console ticket (`PlasmaClient.create_console_ticket`, sent as
``?ticket=``) or a token / API key (sent as ``Authorization: Bearer``; by default the one
`client/credentials.py` finds).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from urllib.parse import quote

import aiohttp

from plasmavmc.config.credentials import default_credential
from plasmavmc.errors import InvalidArgument, PlasmaError, Unavailable


def console_url(gateway: str, org_id: str, project_id: str, vm: str, console_type: str = "serial") -> str:
    if not gateway.startswith(("http://", "https://")):
        raise InvalidArgument("gateway", f"{gateway!r} must be an http:// or https:// URL")
    parts = (quote(org_id, safe=""), quote(project_id, safe=""), quote(vm, safe=""))
    return (f"{gateway.rstrip('/')}/v1/orgs/{parts[0]}/projects/{parts[1]}/vms/{parts[2]}/console"
            f"?type={quote(console_type, safe='')}")


class ConsoleSocket:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._session = session
        self._ws = ws

    async def send(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for msg in self._ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                yield bytes(msg.data)
            elif msg.type is aiohttp.WSMsgType.TEXT:
                yield str(msg.data).encode()
            else:
                break
        if self._ws.close_code not in (None, 1000):
            raise PlasmaError(f"console closed by the gateway (WebSocket code {self._ws.close_code})")

    async def close(self) -> None:
        await self._ws.close()
        await self._session.close()

    async def __aenter__(self) -> ConsoleSocket:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


async def open_console(gateway: str, org_id: str, project_id: str, vm: str, console_type: str = "serial",
                       *, ticket: str | None = None, credential: str | None = None) -> ConsoleSocket:
    url = console_url(gateway, org_id, project_id, vm, console_type)
    headers = {}
    if ticket:
        url += f"&ticket={quote(ticket, safe='')}"
    elif token := (default_credential() if credential is None else credential):
        headers["Authorization"] = f"Bearer {token}"
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, protocols=("binary",), heartbeat=30.0, headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        raise PlasmaError(f"console refused ({exc.status}): {exc.message}") from None
    except (aiohttp.ClientError, OSError) as exc:
        with contextlib.suppress(Exception):
            await session.close()
        raise Unavailable(f"console gateway {gateway} unreachable: {exc}") from exc
    return ConsoleSocket(session, ws)
