"""The agent's HTTP port (`[agent] metrics_addr`, default :8084): `/health`, `/ready`, `/metrics`.

`/health` is liveness. `/ready`: the control plane took a heartbeat within three heartbeat intervals
(a node the control plane cannot hear from gets no new VMs). `/metrics`: this process's registry,
with the agent's collector (`agent/metrics.py`) and its gRPC request metrics.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from plasmavmc.agent.metrics import AgentMetrics


async def start_agent_http(metrics: AgentMetrics, host: str, port: int, heartbeat_interval: float) -> web.AppRunner:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node_id": metrics.node_id})

    async def ready(request: web.Request) -> web.Response:
        age = time.time() - metrics.last_heartbeat_ok
        ok = metrics.last_heartbeat_ok > 0 and age < 3 * heartbeat_interval
        body = {"status": "ready" if ok else "not ready", "node_id": metrics.node_id,
                "heartbeat_age_seconds": round(age, 3) if metrics.last_heartbeat_ok else None}
        return web.json_response(body, status=200 if ok else 503)

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
