"""What mutual TLS and the node-identity check cost agent reports: Heartbeat throughput and the cost of a
new connection, against a plain server and an mTLS one, in the same run.

    .venv/bin/python -m bench.tls_bench [--calls 2000] [--nodes 16] [--connects 50] [--rounds 3]

Two real `plasmavmc-server` processes (SQLite, temp dirs, random loopback ports): `plain` (the loopback
default: reports taken on trust) and `mtls` (`[server.tls]` with `ca_file`: every report is checked
against the node certificate presenting it). `--nodes` clients heartbeat at once, each as its own node
over its own connection with that node's certificate from `plasmavmc.pki` (one node's heartbeats are
serial, as an agent's are). Rounds alternate which side goes first; each figure is the
median over rounds. Prints one JSON document; `overhead` = 1 - mtls/plain throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.common import emit, median
from plasmavmc.pki import certs
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, node_pb2
from plasmavmc.wire.convert import to_proto
from tests.ports import free_port


def heartbeat(node_id: str) -> agent_pb2.HeartbeatRequest:
    node = Node(id=node_id, capacity=NodeCapacity(4, 8192, 100), agent_address="127.0.0.1:1")
    return agent_pb2.HeartbeatRequest(node=to_proto(node, node_pb2.Node()))


def node_id(i: int) -> str:
    return f"bench-{i:03d}"


def start_server(root: Path, pki: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    root.mkdir()
    addr = f"127.0.0.1:{free_port()}"
    text = (f'[server]\naddr = "{addr}"\nmetrics_addr = "127.0.0.1:{free_port()}"\n'
            f'console_addr = "127.0.0.1:{free_port()}"\n[store]\nbackend = "sqlite"\npath = "{root}/state.db"\n'
            f'[image_store]\nbackend = "local"\npath = "{root}/images"\n'
            f'[iam]\nbootstrap_credential_path = "{root}/admin.token"\n[logging]\nlevel = "warn"\n')
    if pki is not None:
        text += f'[server.tls]\ncert_file = "{pki}/api.pem"\nkey_file = "{pki}/api.key"\nca_file = "{pki}/ca.pem"\n'
    (root / "server.toml").write_text(text)
    argv = [sys.executable, "-m", "plasmavmc.server.main", "-c", str(root / "server.toml")]
    log = (root / "server.log").open("wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), addr


def channel(addr: str, pki: Path | None, node: str) -> grpc.aio.Channel:
    if pki is None:
        return grpc.aio.insecure_channel(addr)
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / f"node-{node}.key").read_bytes(),
                                         (pki / f"node-{node}.pem").read_bytes())
    return grpc.aio.secure_channel(addr, creds)


async def until_serving(addr: str, pki: Path | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with channel(addr, pki, node_id(0)) as ch:
        while True:
            try:
                await agent_pb2_grpc.AgentServiceStub(ch).Heartbeat(heartbeat(node_id(0)), timeout=5)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)  # polling a starting process with a deadline


async def throughput(addr: str, pki: Path | None, calls: int, nodes: int) -> float:
    """Heartbeats per second from `nodes` connected agents sharing `calls` heartbeats."""
    left = iter(range(calls))
    connected: list[int] = []
    all_in, go = asyncio.Event(), asyncio.Event()

    async def agent(i: int) -> None:
        async with channel(addr, pki, node_id(i)) as ch:
            stub, request = agent_pb2_grpc.AgentServiceStub(ch), heartbeat(node_id(i))
            await stub.Heartbeat(request, timeout=30)  # connected (and registered) before the clock starts
            connected.append(i)
            if len(connected) == nodes:
                all_in.set()
            await go.wait()
            for _ in left:
                await stub.Heartbeat(request, timeout=30)

    agents = asyncio.gather(*(agent(i) for i in range(nodes)))
    await asyncio.wait_for(all_in.wait(), 120)
    start = time.perf_counter()
    go.set()
    await agents
    return calls / (time.perf_counter() - start)


async def connect_ms(addr: str, pki: Path | None, connects: int) -> float:
    """Median of: open a channel, send one heartbeat (handshake included), close."""
    times = []
    for _ in range(connects):
        start = time.perf_counter()
        async with channel(addr, pki, node_id(0)) as ch:
            await agent_pb2_grpc.AgentServiceStub(ch).Heartbeat(heartbeat(node_id(0)), timeout=30)
        times.append((time.perf_counter() - start) * 1000)
    return median(times)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pv-tlsbench-") as tmp:
        pki = Path(tmp) / "pki"
        certs.init(pki)
        for i in range(args.nodes):
            certs.issue_node(pki, node_id(i))
        sides = {"plain": None, "mtls": pki}
        procs = {name: start_server(Path(tmp) / name, p) for name, p in sides.items()}
        try:
            for name, p in sides.items():
                await until_serving(procs[name][1], p)
            rate: dict[str, list[float]] = {n: [] for n in sides}
            connect: dict[str, list[float]] = {n: [] for n in sides}
            for r in range(args.rounds):
                for name in (list(sides) if r % 2 == 0 else list(reversed(sides))):
                    addr = procs[name][1]
                    rate[name].append(await throughput(addr, sides[name], args.calls, args.nodes))
                    connect[name].append(await connect_ms(addr, sides[name], args.connects))
        finally:
            for proc, _ in procs.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    plain, mtls = median(rate["plain"]), median(rate["mtls"])
    emit("tls_bench", calls=args.calls, nodes=args.nodes, rounds=args.rounds,
         heartbeats_per_s={"plain": round(plain), "mtls": round(mtls)}, overhead=round(1 - mtls / plain, 3),
         connect_ms={n: round(median(v), 2) for n, v in connect.items()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--connects", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
