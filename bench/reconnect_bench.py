"""How long calls keep failing after a server restart, past the moment its `/health` answers.

    .venv/bin/python -m bench.reconnect_bench [--runs 5]

A real server (SQLite) is killed -9 and started again on the same ports, `--runs` times. Two clients
that were connected before the kill then call ListNodes until it answers: a `PlasmaClient` (channels
with the short reconnect backoff of `wire/channels.py`) and, as the baseline, a bare gRPC channel with
gRPC's default backoff. Each figure is the time from the first 200 on `/health` to that client's first
answer (negative: it answered before /health did). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import grpc.aio

from bench.common import emit, median
from plasmavmc.client import PlasmaClient
from plasmavmc.v1 import node_pb2, node_pb2_grpc
from tests.conftest import GUEST_DIR, Proc, write_configs
from tests.e2e.helpers import health_ok

DEADLINE_S = 60.0


async def first_answer(call: Callable[[], Awaitable[object]], started: float) -> float:
    """The monotonic time at which `call()` first succeeds."""
    while time.monotonic() - started < DEADLINE_S:
        try:
            await call()
            return time.monotonic()
        except Exception:  # any failure means "not yet"
            await asyncio.sleep(0.01)  # polling the restarting server, with a deadline
    raise TimeoutError("no answer")


async def one_restart(
    server: Proc, http: str, ours: PlasmaClient, stub: node_pb2_grpc.NodeServiceStub
) -> dict[str, float]:
    server.kill()
    started = time.monotonic()
    server.start()
    tasks = [
        asyncio.create_task(first_answer(ours.list_nodes, started)),
        asyncio.create_task(first_answer(lambda: stub.ListNodes(node_pb2.ListNodesRequest(), timeout=1), started)),
    ]
    while not await asyncio.to_thread(health_ok, http):
        assert time.monotonic() - started < DEADLINE_S, "server not healthy"
        await asyncio.sleep(0.005)  # polling /health, with a deadline
    healthy = time.monotonic()
    ours_at, default_at = await asyncio.gather(*tasks)
    return {"plasmaclient_s": ours_at - healthy, "grpc_default_s": default_at - healthy}


async def run(runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="plasmavmc-reconnect-"))
    server_cfg, _, api, http, _ = write_configs(root, GUEST_DIR, "node-1")
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(server_cfg)], root / "server.log")
    server.start()
    try:
        while not health_ok(http):
            await asyncio.sleep(0.05)  # waiting for the first start
        async with await PlasmaClient.connect(api) as ours, grpc.aio.insecure_channel(api) as channel:
            stub = node_pb2_grpc.NodeServiceStub(channel)
            await ours.list_nodes()
            await stub.ListNodes(node_pb2.ListNodesRequest())
            samples = [await one_restart(server, http, ours, stub) for _ in range(runs)]
    finally:
        server.stop()
    emit(
        "reconnect_after_restart",
        runs=runs,
        plasmaclient_median_s=round(median([s["plasmaclient_s"] for s in samples]), 3),
        grpc_default_median_s=round(median([s["grpc_default_s"] for s in samples]), 3),
        samples=[{k: round(v, 3) for k, v in s.items()} for s in samples],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(run(parser.parse_args().runs))


if __name__ == "__main__":
    main()
