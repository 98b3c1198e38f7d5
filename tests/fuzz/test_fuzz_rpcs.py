"""Fuzz every RPC of every service against a real server and agent: no input may answer INTERNAL or
UNKNOWN (issue 13).

Services: the public API (every service in `plasmavmc.v1`: VmService, ImageService, NodeService,
QuotaService, IamService), called as the system admin so that requests reach the servicers behind
authorization, the AgentService half on
the server (Heartbeat, HeartbeatStream, ReportStatus) and the AgentService on the agent's port. Each round sends one
random or boundary message (see `messages.py`; some are plain garbage bytes, sent through a raw channel)
to every method, until the time budget is spent. Afterwards the server must still list nodes and VMs and
answer `/ready` 200: nothing the fuzzer stored may poison a list or a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import pkgutil
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

import plasmavmc.v1
from plasmavmc.client import PlasmaClient
from plasmavmc.v1 import agent_pb2
from tests.conftest import ADMIN_CREDENTIAL, Cluster, needs_qemu, start_cluster
from tests.fuzz.messages import random_message

pytestmark = [needs_qemu]
#: env PLASMAVMC_FUZZ_SECONDS / PLASMAVMC_FUZZ_SEED: a longer run, other messages (the default is repeatable)
BUDGET_SECONDS = float(os.environ.get("PLASMAVMC_FUZZ_SECONDS", "45"))
SEED_BASE = int(os.environ.get("PLASMAVMC_FUZZ_SEED", "0")) * 1_000_000_000
CALL_TIMEOUT = 5.0
AUTH = (("authorization", f"Bearer {ADMIN_CREDENTIAL.read_text().strip()}"),)  # calls reach the servicers
OPTIONS: dict[str, Any] = {"timeout": CALL_TIMEOUT, "metadata": AUTH}
PARALLEL = 8
BAD = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
#: what the gRPC client library (not our server: its INTERNAL answers carry a request id) reports when a
#: request stream is still being written as the server's answer arrives; rare, and the same call is
#: then sent again: the server's answer to a message does not depend on that timing
TRANSPORT_RACE = "Internal error from Core"
#: gRPC's default receive limit: a message over it is refused by the receiving transport before any
#: servicer (or our request guard) reads it, at once, so a request stream's writer stops after it (a write
#: still in flight as that answer arrives is what the client library reports as TRANSPORT_RACE)
RECEIVE_LIMIT = 4 * 1024 * 1024
AGENT = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]


def _public_services() -> list[Any]:
    """Every service the generated `plasmavmc.v1` modules define, except the AgentService."""
    found = []
    for info in pkgutil.iter_modules(plasmavmc.v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"plasmavmc.v1.{info.name}")
            found += [s for s in module.DESCRIPTOR.services_by_name.values() if s.full_name != AGENT.full_name]
    return found


PUBLIC = _public_services()


@dataclass(frozen=True)
class Target:
    where: str
    channel: grpc.aio.Channel
    method: object  # a MethodDescriptor

    @property
    def path(self) -> str:
        m = self.method
        return f"/{m.containing_service.full_name}/{m.name}"  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("fuzz"), guest_dir, node_id="fuzz-node")
    try:
        yield c
    finally:
        c.stop()


async def _stream_in(call: Any, target: Target, seed: int) -> None:
    """Write 1-3 messages to a request stream, stopping once the server has answered (a server may refuse
    the first message before it reads the rest), then half-close."""
    for i in range(1 + seed % 3):
        if call.done():
            break
        message = random_message(target.method.input_type, seed * 7 + i)  # type: ignore[attr-defined]
        try:
            await call.write(message)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            break
        if len(message) > RECEIVE_LIMIT:
            break  # refused by the receiver's transport at once (RESOURCE_EXHAUSTED): see RECEIVE_LIMIT
    with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
        await call.done_writing()


async def _call(target: Target, seed: int) -> tuple[grpc.StatusCode, str]:
    m: Any = target.method
    ch = target.channel
    try:
        if m.client_streaming:
            kind = ch.stream_stream if m.server_streaming else ch.stream_unary
            call: Any = kind(target.path)(**OPTIONS)
            await _stream_in(call, target, seed)
            if m.server_streaming:
                await _drain(call)
            else:
                await call
        elif m.server_streaming:
            await _drain(ch.unary_stream(target.path)(random_message(m.input_type, seed), **OPTIONS))
        else:
            await ch.unary_unary(target.path)(random_message(m.input_type, seed), **OPTIONS)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def _drain(call: Any) -> None:
    """Read a few items of a response stream (a followed console never ends by itself)."""
    count = 0
    while (item := await call.read()) is not grpc.aio.EOF:
        count += 1
        if count >= 4 or not item:
            call.cancel()
            return


async def test_no_input_answers_internal_or_unknown(fuzz_cluster: Cluster) -> None:
    agent_addr = tomllib.loads((fuzz_cluster.root / "agent.toml").read_text())["agent"]["addr"]
    async with grpc.aio.insecure_channel(fuzz_cluster.api) as api, grpc.aio.insecure_channel(agent_addr) as agent:
        targets = [Target("api", api, m) for s in PUBLIC for m in s.methods]
        targets += [Target("server-agent", api, m) for m in AGENT.methods]
        targets += [Target("agent", agent, m) for m in AGENT.methods]
        bad: list[str] = []
        calls = 0
        by_code: dict[str, int] = {}
        slow: set[str] = set()
        slowest: dict[str, float] = {}  # followed streams (console, watch) run until the call's deadline
        deadline = time.monotonic() + BUDGET_SECONDS
        seed = SEED_BASE
        gate = asyncio.Semaphore(PARALLEL)

        async def one(target: Target, s: int) -> None:
            nonlocal calls
            async with gate:
                started = time.monotonic()
                code, details = await _call(target, s)
                for _ in range(2):
                    if details != TRANSPORT_RACE:
                        break
                    code, details = await _call(target, s)
            calls += 1
            name = target.path.rpartition("/")[2]
            slowest[name] = max(slowest.get(name, 0.0), time.monotonic() - started)
            by_code[code.name] = by_code.get(code.name, 0) + 1
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                slow.add(target.path.rpartition("/")[2])
            if code in BAD:
                bad.append(f"{target.where} {target.path} seed={s}: {code.name} {details[:200]}")

        while time.monotonic() < deadline:
            await asyncio.gather(*(one(t, seed * 1000 + i) for i, t in enumerate(targets)))
            seed += 1
        print(f"fuzz: {calls} calls over {len(targets)} methods in {seed - SEED_BASE} rounds: {by_code}; "
              f"deadline reached by {sorted(slow)}; slowest: "
              f"{sorted(((round(v, 1), k) for k, v in slowest.items()), reverse=True)[:6]}")
        assert not bad, f"{len(bad)} of {calls} calls answered INTERNAL/UNKNOWN:\n" + "\n".join(bad[:40])
    await _still_serves(fuzz_cluster)


async def _still_serves(cluster: Cluster) -> None:
    async with await PlasmaClient.connect(cluster.api) as client:
        nodes = await client.list_nodes()
        assert any(n.id == cluster.node_id for n in nodes)
        await client.list_all_vms("org-fuzz", "proj-fuzz")
    async with aiohttp.ClientSession() as session, session.get(f"{cluster.http}/ready") as resp:
        assert resp.status == 200, await resp.text()
