"""The interactive console gateway (spec §11.1): a WebSocket per console session, on its own port.

    GET /v1/orgs/{org}/projects/{project}/vms/{vm}/console?type=serial|vnc&ticket=T   (Upgrade: websocket)

It listens on ``[server] console_addr`` (default :8083), never on the unauthenticated metrics port.
Every session needs a credential allowing ``plasmavmc:vms:console`` on that VM: a console ticket
(`IamService.CreateConsoleTicket`, 60 s, good for that one VM) in ``ticket`` or an ``Authorization:
Bearer`` token or API key. A request with an ``Origin`` header is refused unless the origin is this
gateway's own host (a foreign web page cannot open a console with the user's ticket). Opening a session,
or being refused one, is audited.

`{vm}` is the VM's id or name. Binary frames both ways: what the client sends is console input (text
frames are taken as UTF-8 input too, for browser terminals), what the server sends is console output.
A serial session first replays the retained output (the node keeps a ring buffer of recent output, so
history survives a reconnect), then follows it; a VNC session carries the raw RFB stream of the VM's
VNC server (WebSocket subprotocol "binary", as noVNC-style clients ask). The gateway holds no state:
each session is one `ConsoleSession` stream to the VM's node agent, which ends when the VM stops.

Errors found before the upgrade are HTTP errors with a JSON body {code, message, field} (a bad
`type`, org, project or VM reference is 400 naming it; anything unexpected 500 with a request id);
after it, the socket closes with code 1011 and the reason. Input frames are at most `MAX_INPUT_FRAME`
bytes (a larger one closes the socket with 1009, message too big).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from plasmavmc.core.context import Core, VmRef
from plasmavmc.errors import ErrorCode, InvalidArgument, PermissionDenied, PlasmaError, vm_not_found
from plasmavmc.iam.audit import AuditEntry
from plasmavmc.iam.authn import bearer
from plasmavmc.iam.gate import Iam
from plasmavmc.iam.model import Caller
from plasmavmc.types.vm import ConsoleType, VirtualMachine
from plasmavmc.wire.guard import internal, request_id

log = logging.getLogger(__name__)
ROUTE = "/v1/orgs/{org}/projects/{project}/vms/{vm}/console"
_HTTP_STATUS = {ErrorCode.INVALID_ARGUMENT: 400, ErrorCode.UNAUTHENTICATED: 401, ErrorCode.VM_NOT_FOUND: 404,
                ErrorCode.NOT_FOUND: 404,
                ErrorCode.INVALID_STATE: 409, ErrorCode.PERMISSION_DENIED: 403, ErrorCode.UNAVAILABLE: 503}
MAX_INPUT_FRAME = 64 * 1024
CONSOLE_ACTION = "plasmavmc:vms:console"


def _error(err: PlasmaError) -> web.Response:
    body = {"code": err.code.value, "message": err.message, "field": err.field}
    return web.json_response(body, status=_HTTP_STATUS.get(err.code, 500))


def _console_type(text: str) -> ConsoleType:
    try:
        return ConsoleType(text or "serial")
    except ValueError:
        raise InvalidArgument("type", f"{text[:20]!r}: one of serial, vnc") from None


async def _client_input(ws: web.WebSocketResponse, keys: asyncio.Queue[bytes | None]) -> None:
    try:
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                await keys.put(bytes(msg.data))
            elif msg.type is WSMsgType.TEXT:
                await keys.put(str(msg.data).encode())
            else:
                break
    finally:
        await keys.put(None)


async def _drain(keys: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (data := await keys.get()) is not None:
        yield data


def _check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser page: nothing to check
    if urlsplit(origin).netloc.lower() != request.host.lower():
        raise PermissionDenied(f"origin {origin[:100]!r} may not open consoles here")


async def _admit(request: web.Request, ref: VmRef) -> tuple[VirtualMachine, Caller]:
    """The VM, if the request's credential may open its console (raises otherwise)."""
    iam: Iam = request.app["iam"]
    _check_origin(request)
    credential = request.query.get("ticket") or bearer(request.headers.get("Authorization"))
    caller = await iam.gate.caller(credential)
    missing = functools.partial(vm_not_found, ref.org_id, ref.project_id, ref.vm)
    await iam.gate.require(caller, CONSOLE_ACTION, ref.org_id, ref.project_id, missing)
    vm = (await request.app["core"].find_vm(ref)).value
    if caller.via == "ticket" and caller.ticket_vm != f"{vm.org_id}/{vm.project_id}/{vm.id}":
        raise missing()
    return vm, caller


def _audit(request: web.Request, ref: VmRef | None, caller: Caller | None, result: str) -> None:
    iam: Iam = request.app["iam"]
    org, project = (ref.org_id, ref.project_id) if ref else ("", "")
    resource = f"vm/{org}/{project}/{ref.vm}" if ref else request.path[:200]
    iam.audit.record(AuditEntry(time.time_ns(), caller.principal_id if caller else "", CONSOLE_ACTION, org,
                                project, resource, result, request.remote or ""))


async def console_session(request: web.Request) -> web.StreamResponse:
    core: Core = request.app["core"]
    ref: VmRef | None = None
    try:
        kind = _console_type(request.query.get("type", "serial"))
        ref = VmRef(request.match_info["org"], request.match_info["project"], request.match_info["vm"]).validated()
        vm, caller = await _admit(request, ref)
        agent = await core.agent_for(vm)
    except PlasmaError as err:
        _audit(request, ref, None, err.code.value)
        return _error(err)
    except Exception as exc:  # a bug: answered INTERNAL with a request id, traceback in the log
        bug = internal("console_session", exc)
        return _error(PlasmaError(f"{bug.message} (request id {request_id()})"))
    _audit(request, ref, caller, "OK")
    ws = web.WebSocketResponse(protocols=("binary",), heartbeat=30.0, max_msg_size=MAX_INPUT_FRAME)
    await ws.prepare(request)
    keys: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)

    async def output() -> None:
        async for chunk in agent.console_session(vm.id, kind, _drain(keys)):
            await ws.send_bytes(chunk)

    pumps = [asyncio.create_task(output()), asyncio.create_task(_client_input(ws, keys))]
    done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, PlasmaError, ConnectionError):
            await task
    failure = next((t.exception() for t in done if not t.cancelled() and t.exception() is not None), None)
    if isinstance(failure, PlasmaError):
        await ws.close(code=1011, message=f"{failure.code.value}: {failure.message}"[:120].encode())
    else:
        if failure is not None:
            log.warning("console session of VM %s ended: %r", vm.id, failure)
        await ws.close()
    return ws


async def start_console(core: Core, iam: Iam, host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app["core"], app["iam"] = core, iam
    app.router.add_get(ROUTE, console_session)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
