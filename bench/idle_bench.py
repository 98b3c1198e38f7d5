"""Idle control plane: the server's CPU with nothing asked of the API, 1,000 simulated nodes heartbeating.

    nice -n 19 .venv/bin/python -m bench.idle_bench [--nodes 1000] [--seconds 30] [--vms 0]
        [--heartbeat-interval 5] [--profile DIR]

The cost of an idle server does not depend on the VM count (issue 19: 0.26 / 0.27 / 0.23 of a core at
0 / 10,000 / 100,000 VMs): it is the heartbeats of the nodes (1,000 nodes every 5 s = 200 messages/s)
and the leader's periodic passes. So this bench needs no VMs (`--vms N` writes N STOPPED VM records
straight into the store first, as `fleet_bench --seed` does, to check that). In one run:

- `server`: a real server (SQLite) and `--nodes` SIMULATED nodes in a second process (real agent code,
  delta heartbeats over one `HeartbeatStream` per node), once the server has settled: its CPU over
  `--seconds` as a share of one core (`streams`), then again with the agents switched to unary
  Heartbeat calls (`unary`, SIGUSR1 to the agents);
- `echo`: the same agents heartbeating to a bare grpc.aio server in its own process that answers every
  Heartbeat (stream message or call) with a canned answer and does nothing else: grpc.aio's own
  per-message cost, the floor under ours (`server_over_echo` = server / echo, each side's CPU per
  heartbeat in µs).

`--profile DIR`: py-spy (`PYSPY`, default the one on PATH) records the server during its `streams`
window (`--rate 200 --format raw`, GIL-holding samples only: `--gil`) into `DIR/server.raw` and
`DIR/server-all.raw` (the echo's into `DIR/echo.raw`, `DIR/echo-all.raw`).

Prints one JSON document (with the load average around each window).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from bench.common import compiled, emit
from bench.fleet_bench import _seed, _settled, idle_window
from bench.scheduler_bench import _cpu_seconds, _wait_line, server_and_agents
from plasmavmc.observe.interceptor import ObservingInterceptor
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc
from plasmavmc.wire.chain import MethodChain
from plasmavmc.wire.guard import RequestGuard
from tests.conftest import GUEST_DIR, Proc
from tests.ports import free_port

SETTLE_DEADLINE = 1200.0  # seconds a started server gets to settle before its idle cost is measured


class _Echo(agent_pb2_grpc.AgentServiceServicer):
    """Answers every heartbeat with the same canned answer; nothing else."""

    ANSWER = agent_pb2.HeartbeatResponse(heartbeat_interval_seconds=5, node_state="NODE_STATE_READY")

    async def Heartbeat(self, request: agent_pb2.HeartbeatRequest, context: Any) -> agent_pb2.HeartbeatResponse:
        return self.ANSWER

    async def HeartbeatStream(self, requests: AsyncIterator[agent_pb2.HeartbeatRequest],
                              context: Any) -> AsyncIterator[agent_pb2.HeartbeatResponse]:
        async for _ in requests:
            yield self.ANSWER


async def serve_echo(addr: str, layered: bool = False) -> None:
    """`layered`: the echo served through the server's own layers (`wire/chain.py`: observing, the
    request guard) instead of straight on grpc.aio."""
    server = grpc.aio.server()
    if layered:
        chain = MethodChain([ObservingInterceptor(), RequestGuard()])
        agent_pb2_grpc.add_AgentServiceServicer_to_server(_Echo(), chain)
        chain.serve_on(server)
    else:
        agent_pb2_grpc.add_AgentServiceServicer_to_server(_Echo(), server)
    server.add_insecure_port(addr)
    await server.start()
    print("READY", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(grace=0)


async def _measure(server_pid: int, agents_pid: int, seconds: float, beats_per_s: float) -> dict[str, object]:
    """`idle_window`, with the server's CPU per heartbeat."""
    out = await idle_window(server_pid, agents_pid, seconds)
    share = out["server_cpu_share"]
    assert isinstance(share, float)
    out["server_cpu_us_per_heartbeat"] = round(share / beats_per_s * 1e6, 1)
    return out


async def _streams_then_unary(server_pid: int, agents_pid: int, seconds: float, heartbeat: float,
                              beats_per_s: float, profile: Path | None = None, name: str = "server",
                              ) -> dict[str, object]:
    spies = _spy(server_pid, seconds, profile, name) if profile else []
    out: dict[str, object] = {"streams": await _measure(server_pid, agents_pid, seconds, beats_per_s)}
    for spy in spies:
        spy.wait(timeout=seconds + 30)
    os.kill(agents_pid, signal.SIGUSR1)  # the agents send unary calls from their next heartbeat on
    await asyncio.sleep(heartbeat * 1.2)  # every node has switched by then
    try:
        out["unary"] = await _measure(server_pid, agents_pid, seconds, beats_per_s)
    finally:
        os.kill(agents_pid, signal.SIGUSR1)
    return out


def _spy(pid: int, seconds: float, into: Path, name: str) -> list[subprocess.Popen[bytes]]:
    spy = os.environ.get("PYSPY") or shutil.which("py-spy") or "py-spy"
    into.mkdir(parents=True, exist_ok=True)
    base = [spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--duration", str(int(seconds))]
    return [subprocess.Popen([*base, "--gil", "-o", str(into / f"{name}.raw")], stdout=subprocess.DEVNULL),
            subprocess.Popen([*base, "-o", str(into / f"{name}-all.raw")], stdout=subprocess.DEVNULL)]


async def server_side(nodes: int, vms: int, seconds: float, heartbeat: float,
                      profile: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="idle5-server-") as tmp:
        root = Path(tmp)
        if vms:
            store = await SqliteStore.open(root / "state.db")
            await _seed(store, vms, nodes)
            await store.close()
        async with server_and_agents(root, GUEST_DIR, nodes, heartbeat) as (server, _, agents):
            assert server.popen is not None
            http = (root / "server.toml").read_text().split('metrics_addr = "')[1].split('"')[0]
            # settled: the VMs counted, the GetVm copy's render pass done (at 100,000 VMs minutes at nice 19)
            settle = await _settled(server, f"http://{http}", vms, deadline=SETTLE_DEADLINE)
            out = {"seconds_to_settle": settle, "settled": settle < SETTLE_DEADLINE, "vms": vms,
                   **await _streams_then_unary(server.popen.pid, agents.pid, seconds, heartbeat, nodes / heartbeat,
                                               profile)}
            out["server_cpu_seconds_total"] = round(_cpu_seconds(server), 1)
            return out


@contextlib.asynccontextmanager
async def _echo_and_agents(root: Path, nodes: int, heartbeat: float,
                           layered: bool) -> AsyncIterator[tuple[Proc, int]]:
    addr = f"127.0.0.1:{free_port()}"
    layers = ["--layered"] if layered else []
    echo = Proc([sys.executable, "-m", "bench.idle_bench", "--serve-echo", addr, *layers], root / "echo.log")
    echo.start()
    try:
        agents = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plasmavmc.agent.simulated", "--control-plane", addr,
            "--addr", f"127.0.0.1:{free_port()}", "--nodes", str(nodes), "--cache-dir", str(root / "cache"),
            "--heartbeat-interval", str(heartbeat), stdout=asyncio.subprocess.PIPE,
        )
        try:
            await _wait_line(agents, "READY", 300)
            yield echo, agents.pid
        finally:
            if agents.returncode is None:
                agents.terminate()
            await agents.wait()
    finally:
        echo.stop()


async def echo_side(nodes: int, seconds: float, heartbeat: float, profile: Path | None,
                    layered: bool = False) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="idle5-echo-") as tmp:
        async with _echo_and_agents(Path(tmp), nodes, heartbeat, layered) as (echo, agents_pid):
            assert echo.popen is not None
            await asyncio.sleep(heartbeat * 2)  # the registration burst over, every node on its own schedule
            return await _streams_then_unary(echo.popen.pid, agents_pid, seconds, heartbeat, nodes / heartbeat,
                                             profile, "echo")


def _over(ours: dict[str, Any], base: dict[str, Any], kind: str) -> float | None:
    a, b = ours[kind]["server_cpu_share"], base[kind]["server_cpu_share"]
    return round(a / b, 2) if b else None


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--vms", type=int, default=0, help="STOPPED VM records written into the store first")
    p.add_argument("--seconds", type=float, default=30.0, help="each measuring window")
    p.add_argument("--heartbeat-interval", type=float, default=5.0)
    p.add_argument("--profile", type=Path, help="py-spy the server's streams window into this directory")
    p.add_argument("--no-echo", action="store_true", help="skip the bare grpc.aio baseline")
    p.add_argument("--echo-only", action="store_true", help="only the bare grpc.aio baseline")
    p.add_argument("--layered", action="store_true", help="--echo-only: through the server's layers")
    p.add_argument("--serve-echo", metavar="ADDR", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_echo:
        await serve_echo(args.serve_echo, args.layered)
        return
    compiled()
    if args.echo_only:
        emit("idle-echo", layered=args.layered,
             echo=await echo_side(args.nodes, args.seconds, args.heartbeat_interval, args.profile, args.layered))
        return
    server = await server_side(args.nodes, args.vms, args.seconds, args.heartbeat_interval, args.profile)
    echo = None if args.no_echo else await echo_side(args.nodes, args.seconds, args.heartbeat_interval, args.profile)
    emit("idle", nodes=args.nodes, heartbeat_interval_s=args.heartbeat_interval, server=server, echo=echo,
         server_over_echo=None if echo is None else {k: _over(server, echo, k) for k in ("streams", "unary")},
         targets={"server_cpu_share_streams": 0.15})


if __name__ == "__main__":
    asyncio.run(main())
