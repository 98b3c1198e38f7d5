"""The control plane's HTTP side (Appendix B port 8081): `/health`, `/ready`, `/metrics`.

`/health` is liveness (the process answers). `/metrics` sets the cluster gauges from the store first
(`core/gauges.py`), so a follower's scrape is as current as the leader's. `/ready` is readiness as spec
§12.2 defines it: the state store answers and at least one agent is online; it says which part is
missing in its JSON body. It also reports leadership (`leader`: whether this replica runs the control
loops, `leader_id`: who does): every replica serves the API, so a follower is ready too; a replica that
sees no leader at all is not ready, since nothing would finish the operations of a dead replica. On
etcd, `store_endpoint` is the member this replica talks to now (it moves on when that member fails).
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from plasmavmc.core import gauges
from plasmavmc.core.context import Core
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.server.leader import Leadership
from plasmavmc.store.etcd import EtcdStore


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    core: Core = request.app["core"]
    body: dict[str, object] = {}
    try:
        body["store_revision"] = await core.store.revision()
        body["store"] = "ok"
    except Exception as exc:
        body["store"] = f"error: {exc}"
    if isinstance(core.store, EtcdStore):
        body["store_endpoint"] = core.store.conn.current_endpoint
    nodes = [n.value for n in await core.nodes.list()] if body["store"] == "ok" else []
    online = [
        n.id
        for n in nodes
        if core.nodes.liveness.online(n, time.time())
    ]
    body["agents_online"] = online
    leadership: Leadership | None = request.app["leadership"]
    has_leader = leadership is None or leadership.leader_id is not None
    if leadership is not None:
        body["server_id"] = leadership.server_id
        body["leader"] = leadership.is_leader
        body["leader_id"] = leadership.leader_id
    ready = body["store"] == "ok" and bool(online) and has_leader
    body["status"] = "ready" if ready else "not ready"
    return web.json_response(body, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    leadership: Leadership | None = request.app["leadership"]
    is_leader = leadership is None or leadership.is_leader
    await gauges.refresh(request.app["core"], request.app["vm_states"], is_leader)
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start_http(core: Core, host: str, port: int, *, leadership: Leadership | None = None,
                     vm_states: VmStates | None = None) -> web.AppRunner:
    app = web.Application()
    app["core"] = core
    app["leadership"] = leadership
    app["vm_states"] = vm_states
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
