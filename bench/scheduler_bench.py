"""Scheduler throughput: placements per second with claims persisted, and 10,000 VMs through the API.

    .venv/bin/python -m bench.scheduler_bench [--nodes 1000,5000,10000] [--placements 2000]
        [--stores sqlite,etcd] [--api-vms 10000] [--api-nodes 1000] [--concurrency 64]
        [--synchronous NORMAL|FULL]

Part 1 (`placement`), per store and fleet size: N SIMULATED node records in a SQLite store, or in a
real etcd this script starts (tests/etcd.py: loopback, random ports, temp dir); M PENDING VMs are
placed by `core.placement.claim` (scheduler ranking from the node cache + the one-commit claim) with 16
placements in flight; every claim is committed. Baseline, same run: the naive way — re-read every
node from the store and filter/score all of them for each VM (cache max_age 0, no sampling).

Part 2 (`api`): a real server process (SQLite) and 1,000 SIMULATED agents in a second process;
10,000 CreateVm calls through gRPC with `--concurrency` in flight (each, without `start`: quota + record commit,
placement commit, the agent's CreateVm, the STOPPED commit). Baseline, same run: the same number of
trivial API calls (GetQuota) at the same concurrency, i.e. what the API path alone costs.

Also per fleet size, `store_commit_ceiling_per_s`: bare three-write commits on the same store with the
same number in flight — every placement is one such commit, so this bounds the placement rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Literal

from bench.common import emit
from plasmavmc.agent.simulated import simulated_node
from plasmavmc.client import PlasmaClient
from plasmavmc.config.server import SchedulerSettings
from plasmavmc.core.agents import AgentPool
from plasmavmc.core.context import Core
from plasmavmc.core.nodes.registry import NodeRegistry
from plasmavmc.core.vms.placement import claim, claim_writes
from plasmavmc.errors import PlasmaError
from plasmavmc.images.catalog import ImageCatalog
from plasmavmc.images.local import LocalImageStore
from plasmavmc.scheduler import build
from plasmavmc.scheduler.framework import NodeView
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.store.records import Versioned, decode, replace
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types import codec
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, HypervisorType, MemorySpec, VirtualMachine, VmSpec
from tests.conftest import GUEST_DIR, Proc
from tests.e2e.helpers import GUEST_IMAGE
from tests.etcd import EtcdCluster
from tests.ports import free_port

SIM = HypervisorType.SIMULATED
SPEC = VmSpec(
    cpu=CpuSpec(vcpus=1),
    memory=MemorySpec(size_mib=256),
    disks=(DiskSpec(id="root", source=DiskSource(image_id=GUEST_IMAGE), size_gib=1),),
)
IN_FLIGHT = 16
SEED_CHUNK = 100  # node records per seeding commit (etcd takes at most 128 operations per transaction)


async def _core(store: Store, root: Path, nodes: int) -> Core:
    cap = NodeCapacity(64, 256 * 1024, 4096)
    now = int(time.time())
    for start in range(0, nodes, SEED_CHUNK):
        writes = [
            Write(
                keys.node(f"sim-{i:05d}"),
                codec.dumps(
                    replace(
                        simulated_node(f"sim-{i:05d}", "127.0.0.1:1", cap, {"zone": f"z{i % 3}"}), last_heartbeat=now
                    )
                ),
            )
            for i in range(start, min(nodes, start + SEED_CHUNK))
        ]
        await store.commit(writes)
    return Core(store, ImageCatalog(store), LocalImageStore(root / "images"), NodeRegistry(store, 3600), AgentPool())


async def _pending(core: Core, count: int) -> list[Versioned[VirtualMachine]]:
    out = []
    for _ in range(count):
        vm = VirtualMachine(
            id=str(uuid.uuid4()), name="b", org_id="org-b", project_id="proj-b", spec=SPEC, hypervisor=SIM
        )
        key = keys.vm(vm.org_id, vm.project_id, vm.id)
        out.append(Versioned(vm, await core.store.put(key, codec.dumps(vm), 0), key))
    return out


def _placer(vm: VirtualMachine, node_id: str) -> VirtualMachine:
    return replace(vm, state=VmState.CREATING, node_id=node_id)


async def _place_all(core: Core, vms: list[Versioned[VirtualMachine]]) -> float:
    queue = list(vms)

    async def worker() -> None:
        while queue:
            await claim(core, queue.pop(), _placer)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return time.perf_counter() - started


async def _naive_all(core: Core, vms: list[Versioned[VirtualMachine]]) -> float:
    """The baseline: per VM, read and decode every node from the store, filter and score all of them."""
    scheduler = build(SchedulerSettings(feasible_nodes_to_score=0))
    started = time.perf_counter()
    for vm in vms:
        nodes = [decode(Node, kv) for kv in await core.store.list_all(keys.NODES, page_size=5000)]
        by_id = {n.value.id: n for n in nodes}
        cycle = scheduler.cycle(vm.value)
        best = scheduler.rank(cycle, [NodeView(n.value) for n in nodes])[0]
        _, writes = claim_writes(vm, by_id[best.node.id], _placer(vm.value, best.node.id), cycle.need)
        await core.store.commit(writes)
    return time.perf_counter() - started


async def _commit_ceiling(core: Core, count: int) -> float:
    """Same store, same run: bare 3-write commits (VM-, node- and assignment-sized) with the same
    number in flight, i.e. the most claims per second this store could persist."""
    value, todo = b"x" * 900, list(range(count))

    async def worker() -> None:
        while todo:
            i = todo.pop()
            await core.store.commit(
                [Write(f"bench/a/{i}", value), Write(f"bench/n/{i % 97}", value), Write(f"bench/s/{i}", value[:100])]
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return count / (time.perf_counter() - started)


@contextlib.asynccontextmanager
async def _store(backend: str, root: Path, synchronous: Literal["NORMAL", "FULL"]) -> AsyncIterator[Store]:
    """A fresh store of `backend` (etcd: a real one started here, stopped afterwards)."""
    etcd = EtcdCluster.start(root / "etcd") if backend == "etcd" else None
    try:
        if etcd is not None:
            store: Store = await EtcdStore.open(etcd.endpoints)
        else:
            store = await SqliteStore.open(root / "state.db", synchronous=synchronous)
        try:
            yield store
        finally:
            await store.close()
    finally:
        if etcd is not None:
            etcd.stop()


async def placement_rates(
    backend: str, nodes: int, placements: int, synchronous: Literal["NORMAL", "FULL"]
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        async with _store(backend, Path(tmp), synchronous) as store:
            core = await _core(store, Path(tmp), nodes)
            vms = await _pending(core, placements)
            await core.nodes.cache.reload()
            seconds = await _place_all(core, vms)
            allocated = sum(n.value.allocated.vcpus for n in await core.nodes.list())
            assert allocated == placements, f"claims persisted {allocated} != {placements}"
            naive = min(50, max(5, 200_000 // nodes))
            base_seconds = await _naive_all(core, await _pending(core, naive))
            ceiling = await _commit_ceiling(core, placements)
    rate, base = placements / seconds, naive / base_seconds
    return {
        "store": backend,
        "nodes": nodes,
        "placements": placements,
        "seconds": round(seconds, 3),
        "placements_per_s": round(rate, 1),
        "baseline_naive_per_s": round(base, 1),
        "baseline_placements": naive,
        "ratio": round(rate / base, 1),
        "store_commit_ceiling_per_s": round(ceiling, 1),
        "share_of_ceiling": round(rate / ceiling, 2),
    }


async def _wait_line(proc: asyncio.subprocess.Process, word: str, timeout: float) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line.startswith(word.encode()):
        raise RuntimeError(f"simulated agents did not start: {line!r}")


async def _server(root: Path, guest: Path, server_keys: str = "", extra_config: str = "") -> tuple[Proc, str]:
    api, http = free_port(), free_port()
    cfg = root / "server.toml"
    cfg.write_text(
        f'[server]\naddr = "127.0.0.1:{api}"\nmetrics_addr = "127.0.0.1:{http}"\n'
        f'console_addr = "127.0.0.1:{free_port()}"\n{server_keys}'
        f'[store]\nbackend = "sqlite"\npath = "{root}/state.db"\n'
        f'[image_store]\nbackend = "local"\npath = "{root}/images"\nseed_dirs = ["{guest}"]\n'
        f'[scheduler]\ndefault_hypervisor = "simulated"\n[logging]\nlevel = "warning"\nformat = "text"\n'
        + extra_config
    )
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(cfg)], root / "server.log")
    server.start()
    return server, f"127.0.0.1:{api}"


def pid_cpu(pid: int) -> float:
    """User + system CPU time process `pid` has used (from /proc): what it cost, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(proc: Proc) -> float:
    """`pid_cpu` of a started `Proc`."""
    assert proc.popen is not None
    return pid_cpu(proc.popen.pid)


async def _calls(count: int, concurrency: int, call: object) -> float:
    todo = list(range(count))

    async def worker() -> None:
        while todo:
            await call(todo.pop())  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def creator(client: PlasmaClient, org: str, errors: list[str]) -> Callable[[int], Awaitable[None]]:
    """CreateVm of VM number i (in one of 10 projects of `org`); a refusal is noted in `errors`."""

    async def create(i: int) -> None:
        try:
            await client.create_vm(f"vm-{i:06d}", org, f"proj-{i % 10}", SPEC, SIM)
        except PlasmaError as err:
            errors.append(err.message)

    return create


@contextlib.asynccontextmanager
async def server_and_agents(
    root: Path, guest: Path, nodes: int, heartbeat: float, server_keys: str = "", extra_config: str = "",
    agent_args: tuple[str, ...] = (),
) -> AsyncIterator[tuple[Proc, str, asyncio.subprocess.Process]]:
    """A server process (SQLite under `root`) and `nodes` SIMULATED agents in a second process, all
    registered; stopped on the way out. Yields the server, its API address and the agents' process."""
    server, api = await _server(root, guest, server_keys, extra_config)
    agents = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.agent.simulated", "--control-plane", api,
        "--addr", f"127.0.0.1:{free_port()}", "--nodes", str(nodes), "--cache-dir", str(root / "cache"),
        "--heartbeat-interval", str(heartbeat), *agent_args, stdout=asyncio.subprocess.PIPE,
    )
    try:
        await _wait_line(agents, "READY", 300)
        yield server, api, agents
    finally:
        if agents.returncode is None:
            agents.terminate()
        await agents.wait()
        server.stop()


async def _idle_cpu_rate(server: Proc, seconds: float) -> float:
    """The server's CPU seconds per second while no API call runs (heartbeats, loops), over `seconds`."""
    before = _cpu_seconds(server)
    await asyncio.sleep(seconds)  # a measuring window, not a wait for anything
    return (_cpu_seconds(server) - before) / seconds


async def api_run(vms: int, nodes: int, concurrency: int, guest: Path, heartbeat: float,
                  server_keys: str = "", extra_config: str = "", baseline: bool = True,
                  idle_seconds: float = 0.0) -> dict[str, object]:
    """`server_keys` (in `[server]`) and `extra_config` (tables appended) go into the server's config;
    `baseline`: also time as many GetQuota calls; `idle_seconds`: also measure the server's background CPU
    rate (heartbeats, loops) over that long just before and just after the creates."""
    base = 0.0
    idle: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cluster = server_and_agents(Path(tmp), guest, nodes, heartbeat, server_keys, extra_config)
        async with cluster as (server, api, _), await PlasmaClient.connect(api) as client:
            errors: list[str] = []
            create = creator(client, "org-b", errors)
            idle += [await _idle_cpu_rate(server, idle_seconds)] if idle_seconds else []
            cpu_before = _cpu_seconds(server)
            seconds = await _calls(vms, concurrency, create)
            server_cpu = _cpu_seconds(server) - cpu_before
            idle += [await _idle_cpu_rate(server, idle_seconds)] if idle_seconds else []
            if baseline:
                base = await _calls(vms, concurrency, lambda i: client.get_quota("org-b", f"proj-{i % 10}"))
            used = (await client.get_quota("org-b")).usage.vms
    return {
        "vms": vms,
        "nodes": nodes,
        "concurrency": concurrency,
        "heartbeat_interval_s": heartbeat,
        "seconds": round(seconds, 2),
        "server_cpu_seconds": round(server_cpu, 2),
        "server_idle_cpu_rates": [round(rate, 3) for rate in idle],  # before, after the creates
        "creates_per_s": round(vms / seconds, 1),
        "errors": len(errors),
        "first_error": errors[:1],
        "vms_counted_in_quota": used,
        "baseline_getquota_seconds": round(base, 2),
        "ratio_to_baseline": round(seconds / base, 2) if base else None,
    }


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", default="1000,5000,10000")
    p.add_argument("--placements", type=int, default=2000)
    p.add_argument("--stores", default="sqlite,etcd", help="placement part: sqlite, etcd or both")
    p.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="FULL", help="of the SQLite store")
    p.add_argument("--api-vms", type=int, default=10_000)
    p.add_argument("--api-nodes", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--heartbeat-interval", type=float, default=5.0, help="of each simulated node")
    p.add_argument("--guest-dir", type=Path, default=GUEST_DIR)
    args = p.parse_args()
    placement = [
        await placement_rates(backend, int(n), args.placements, args.synchronous)
        for backend in args.stores.split(",")
        if backend
        for n in args.nodes.split(",")
        if n
    ]
    api = (
        await api_run(args.api_vms, args.api_nodes, args.concurrency, args.guest_dir, args.heartbeat_interval)
        if args.api_vms
        else None
    )
    emit(
        "scheduler",
        synchronous=args.synchronous,
        in_flight=IN_FLIGHT,
        placement=placement,
        api=api,
        targets={"placements_per_s_at_5000": 1000, "api_10000_vms_seconds": 60},
    )


if __name__ == "__main__":
    asyncio.run(main())
