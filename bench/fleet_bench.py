"""Fleet scale: a real server (SQLite) and 1,000 SIMULATED nodes, grown to 10,000 and 100,000 VMs in one run.

    nice -n 10 .venv/bin/python -m bench.fleet_bench [--vms 10000,100000] [--nodes 1000]
        [--concurrency 64] [--heartbeat-interval 5] [--idle-seconds 30] [--restart-watch 60]

The server runs as its own process, the simulated agents (`plasmavmc.agent.simulated`, real AgentService,
real reporter and delta heartbeats, simulated hypervisor) in a second one. VMs are created through the
API (`--concurrency` in flight) in blocks of 10,000; at each size listed in `--vms`:

- `creates_per_s` of every block (target: flat within 15 %: `block_spread` = (max - min) / max), and the
  server's CPU per create (`server_cpu_per_create_spread`: the same flatness, much less swayed by load);
- idle: the server's and the agents' CPU over `--idle-seconds` with nothing asked of the API, as a
  share of one core (target ≤ 0.15 for the server at 100,000), and the server's RSS (≤ 300 MiB); the
  agents heartbeat over one `HeartbeatStream` per node, and the same is measured again after they are
  switched to unary Heartbeat calls (`idle_unary`, SIGUSR1 to the agents), the baseline of the same run
  (`idle_server_ratio_stream_to_unary`);
- restart (at the largest size only): the server is stopped and started again; seconds until `/ready`,
  until the `plasmavmc_vms_total` gauges add up to the VM count (target ≤ 5 s; also the server CPU spent
  until then, imports included, which load does not inflate), and how many of the
  nodes, all heartbeating throughout, were seen NOT_READY in the `--restart-watch` seconds after (0).

`--seed` (for a machine too busy to create 100,000 VMs through the API in the time there is): ONE server
run and one fleet of agents from an empty store; at each size (0 first, the baseline) this process tops the
store up to that many STOPPED VM records over the nodes, written straight into the server's SQLite file
beside the running server (which sees them through its watch, as it sees any other writer's; the agents do
not hold them, so heartbeats carry none of them), waits until the server has settled (`seconds_to_settle`:
the VM records counted, the GetVm copy rendered, its CPU quiet), creates one `--block` through the API and
measures idle cost; at the largest, the restart. One process serves every block, so the blocks differ by the
store's size and not by which server start served them (separate runs per size differed by up to a third
on the same code).

`index_rebuild`: in this process, a SQLite store with the largest size of VM records: seconds until the
watched state index is ready (what the gauges wait for after a restart) and one full reconcile pass,
each with the process CPU (all threads) and the longest event-loop stall meanwhile (target: a few ms).

Heartbeat of one node holding 10,000 VMs (in this process, the agent's own code: `agent/heartbeats.py`):
bytes and agent CPU of a delta heartbeat when nothing changed, against the full heartbeat (every VM's
report, what every heartbeat was before) measured in the same run: `ratio` = delta / full.

Prints one JSON document; it records the load average at the start and end of each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench.common import compiled, emit
from bench.scheduler_bench import SIM, SPEC, _calls, _cpu_seconds, creator, pid_cpu, server_and_agents
from plasmavmc.agent.heartbeats import DeltaState
from plasmavmc.agent.simulated import simulated_node
from plasmavmc.client import PlasmaClient
from plasmavmc.core.agents import AgentPool
from plasmavmc.core.context import Core
from plasmavmc.core.loops.reconcile import reconcile_once
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.core.nodes.registry import NodeRegistry
from plasmavmc.errors import PlasmaError
from plasmavmc.images.catalog import ImageCatalog
from plasmavmc.images.local import LocalImageStore
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types import codec
from plasmavmc.types.node import NodeCapacity, NodeState
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine, VmStatus
from plasmavmc.v1 import node_pb2
from plasmavmc.wire.convert import to_proto
from tests.conftest import GUEST_DIR, Proc

BLOCK = 10_000
_UNDERIVED = re.compile(r'^plasmavmc_watched_underived\{prefix="plasmavmc/vms/"\} ([0-9.e+]+)$', re.M)
_TOTAL = re.compile(r'^plasmavmc_vms_total\{state="[a-z_]+"\} ([0-9.e+]+)$', re.M)


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


async def _vms_counted(http: str) -> int:
    status, text = await asyncio.to_thread(_get, f"{http}/metrics")
    return int(sum(float(v) for v in _TOTAL.findall(text))) if status == 200 else -1


async def _rendered(http: str) -> bool:
    """The GetVm copy is listed and its background render pass done (its gauge is there, at 0)."""
    status, text = await asyncio.to_thread(_get, f"{http}/metrics")
    left = _UNDERIVED.search(text) if status == 200 else None
    return left is not None and float(left.group(1)) == 0


async def _settled(server: Proc, http: str, vms: int, busy: float = 0.5, deadline: float = 300.0) -> float:
    """Seconds until a (re)started server has counted its `vms` VM records and finished its start-up work
    (the GetVm copy rendered, its CPU over a 2 s window below `busy` of a core): the creates are timed in
    the steady state, not against the start-up's listing and rendering of every record."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if await _vms_counted(http) == vms and await _rendered(http):
            cpu = _cpu_seconds(server)
            await asyncio.sleep(2.0)  # a measuring window
            if (_cpu_seconds(server) - cpu) / 2.0 < busy:
                break
        else:
            await asyncio.sleep(0.5)  # polling the server's gauges
    return round(time.monotonic() - started, 1)


async def _idle(server: Proc, agents_pid: int, seconds: float) -> dict[str, object]:
    assert server.popen is not None
    return await idle_window(server.popen.pid, agents_pid, seconds)


async def idle_window(server_pid: int, agents_pid: int, seconds: float) -> dict[str, object]:
    """The server's and the agents' CPU (share of a core) and memory over `seconds` of nothing asked."""
    load = _load()
    s0, a0, t0 = pid_cpu(server_pid), pid_cpu(agents_pid), time.monotonic()
    await asyncio.sleep(seconds)  # measuring: nothing is asked of the server meanwhile
    wall = time.monotonic() - t0
    return {
        "seconds": round(wall, 1),
        "server_cpu_share": round((pid_cpu(server_pid) - s0) / wall, 3),
        "agents_cpu_share": round((pid_cpu(agents_pid) - a0) / wall, 3),
        "server_rss_mib": _rss_mib(server_pid),
        "agents_rss_mib": _rss_mib(agents_pid),
        "load_before": load,
        "load_after": _load(),
    }


async def _idle_unary(server: Proc, agents_pid: int, seconds: float, heartbeat: float) -> dict[str, object]:
    """The baseline of the same run: the agents switched to unary Heartbeat calls (SIGUSR1), measured
    after one interval and a bit (every node has switched by then; the streams stay open, silent),
    then switched back to streams."""
    os.kill(agents_pid, signal.SIGUSR1)
    await asyncio.sleep(heartbeat * 1.2)
    try:
        return await _idle(server, agents_pid, seconds)
    finally:
        os.kill(agents_pid, signal.SIGUSR1)


def _ratio(ours: object, base: object, key: str) -> float | None:
    assert isinstance(ours, dict) and isinstance(base, dict)
    return round(ours[key] / base[key], 3) if base[key] else None


async def _restart(server: Proc, api: str, http: str, nodes: int, watch: float) -> dict[str, object]:
    vms = await _vms_counted(http)  # the VM records there are (the index is current before the restart)
    server.stop()
    started = time.monotonic()
    server.start()
    ready = gauges = gauges_cpu = None
    seen_not_ready: set[str] = set()
    async with await PlasmaClient.connect(api) as client:
        while time.monotonic() - started < watch or gauges is None:
            if ready is None and (await asyncio.to_thread(_get, f"{http}/ready"))[0] == 200:
                ready = time.monotonic() - started
            if gauges is None and await _vms_counted(http) == vms:
                gauges, gauges_cpu = time.monotonic() - started, _cpu_seconds(server)
            try:
                listed = await client.list_nodes()
            except PlasmaError:
                listed = []
            seen_not_ready |= {n.id for n in listed if n.state == NodeState.NOT_READY}
            if time.monotonic() - started > watch * 3:
                break
            await asyncio.sleep(0.5)  # sampling the restarted server (a scrape of 1,000 nodes' gauges is work)
    return {
        "seconds_to_ready": None if ready is None else round(ready, 2),
        "vms": vms,
        "seconds_to_correct_gauges": None if gauges is None else round(gauges, 2),
        # what the restarted server spent until then (imports included): on a loaded machine the wall
        # time above mostly measures the load, this does not
        "server_cpu_seconds_to_correct_gauges": None if gauges_cpu is None else round(gauges_cpu, 2),
        "nodes": nodes,
        "heartbeating_nodes_seen_not_ready": len(seen_not_ready),
        "watched_seconds": watch,
        "load": _load(),
    }


def heartbeat_cost(vms: int) -> dict[str, object]:
    """One node with `vms` VMs: bytes and CPU of a delta heartbeat with no change vs a full one."""
    statuses = {str(uuid.uuid4()): VmStatus(actual_state=VmState.RUNNING, started_at=1_700_000_000 + i,
                                            accelerator="simulated") for i in range(vms)}

    node = to_proto(simulated_node("sim-00000", "127.0.0.1:9000", NodeCapacity(64, 256 * 1024, 4096)), node_pb2.Node())

    def beat(state: DeltaState) -> tuple[int, float]:
        t0 = time.process_time()
        request, current = state.request(statuses)
        request.node.CopyFrom(node)
        size = len(request.SerializeToString())  # what gRPC does with it
        spent = time.process_time() - t0
        state.answered(request, current, resync=False)
        return size, spent

    full_bytes, full_cpu = beat(DeltaState())
    steady = DeltaState()
    beat(steady)
    delta_bytes, delta_cpu = beat(steady)
    return {
        "vms": vms,
        "full_bytes": full_bytes,
        "full_agent_cpu_ms": round(full_cpu * 1000, 1),
        "delta_bytes": delta_bytes,
        "delta_agent_cpu_ms": round(delta_cpu * 1000, 1),
        "bytes_ratio": round(delta_bytes / full_bytes, 5),
        "cpu_ratio": round(delta_cpu / full_cpu, 2),
    }


async def _max_stall(stop: asyncio.Event) -> float:
    """The longest the event loop went without running this ticker (which asks to run every 1 ms)."""
    worst, last = 0.0, time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        worst, last = max(worst, now - last - 0.001), now
    return worst


async def _seed(store: Store, vms: int, nodes: int, first: int = 0) -> None:
    """`vms` STOPPED VM records (numbered from `first`) spread over the simulated nodes, written straight
    into the store."""
    for start in range(first, first + vms, 500):
        writes = []
        for i in range(start, min(start + 500, first + vms)):
            vm = VirtualMachine(id=str(uuid.uuid4()), name=f"seed-{i:06d}", org_id="org-f",
                                project_id=f"proj-{i % 10}", state=VmState.STOPPED, spec=SPEC,
                                node_id=f"sim-{i % nodes:05d}", hypervisor=SIM, updated_at=int(time.time()))
            writes.append(Write(keys.vm(vm.org_id, vm.project_id, vm.id), codec.dumps(vm)))
        await store.commit(writes)


async def seeded_fleet(sizes: list[int], nodes: int, concurrency: int, heartbeat: float, idle_s: float,
                       watch: float, block: int) -> dict[str, object]:
    """ONE server run and one fleet of agents, from an empty store: at each size (0 first, the baseline)
    the store is topped up to that many VM records, the server let settle, then one block of creates
    through the API and the idle cost; at the largest, the restart. The records are written straight
    into the server's SQLite file by this process, beside the running server, which sees them through
    its watch as it sees any other writer's: the fleet grows under one server process, so the blocks
    differ by the store's size, not by which process (and which start) served them."""
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="fleet-fleet-") as tmp:
        root = Path(tmp)
        big = ("--vcpus", "4096", "--memory-mib", str(1 << 24), "--storage-gib", str(1 << 20),
               "--register-timeout", "900")
        async with server_and_agents(root, GUEST_DIR, nodes, heartbeat, agent_args=big) as (server, api, agents), \
                await PlasmaClient.connect(api) as client:
            http = re.search(r'metrics_addr = "([^"]+)"', (root / "server.toml").read_text())
            assert http is not None
            metrics = f"http://{http.group(1)}"
            store = await SqliteStore.open(root / "state.db", synchronous="NORMAL")
            try:
                made = 0  # VM records in the store (seeded and created)
                for size in [0, *sizes]:
                    try:
                        run = await _grown_run(server, agents.pid, client, store, metrics, made, size, nodes,
                                               concurrency, heartbeat, idle_s, block)
                    except (OSError, RuntimeError, PlasmaError) as err:  # a size this machine could not finish
                        runs.append({"vms_before": size, "failed": f"{type(err).__name__}: {err}"[:300],
                                     "load": _load()})
                        break
                    print(f"run: {json.dumps(run)}", file=sys.stderr, flush=True)
                    runs.append(run)
                    made = int(run["vms_before"]) + block  # type: ignore[call-overload]
                if runs and "failed" not in runs[-1]:
                    runs[-1]["restart"] = await _restart(server, api, metrics, nodes, watch)
            finally:
                await store.close()
    rates = [float(r["creates_per_s"]) for r in runs if "creates_per_s" in r]  # type: ignore[arg-type]
    costs = [float(r["server_cpu_ms_per_create"]) for r in runs if "creates_per_s" in r]  # type: ignore[arg-type]
    return {"nodes": nodes, "concurrency": concurrency, "heartbeat_interval_s": heartbeat, "runs": runs,
            "creates_per_s_spread": _spread(rates), "server_cpu_per_create_spread": _spread(costs)}


def _spread(values: list[float]) -> float | None:
    """(max - min) / max: 0 when flat (the target is <= 0.15)."""
    return round((max(values) - min(values)) / max(values), 3) if values else None


async def _grown_run(server: Proc, agents_pid: int, client: PlasmaClient, store: Store, metrics: str, made: int,
                     size: int, nodes: int, concurrency: int, heartbeat: float, idle_s: float,
                     block: int) -> dict[str, object]:
    """The store topped up from `made` to `size` VM records; once the server has settled, one block of
    creates (named after every record before them), then the idle cost."""
    size = max(size, made)
    seeding = time.monotonic()
    await _seed(store, size - made, nodes, first=made)
    seeded = round(time.monotonic() - seeding, 1)
    errors: list[str] = []
    create = creator(client, "org-f", errors)
    warm = await _settled(server, metrics, size, deadline=900.0)
    load, cpu = _load(), _cpu_seconds(server)
    seconds = await _calls(block, concurrency, lambda i: create(size + i))
    run: dict[str, object] = {"vms_before": size, "seconds_to_seed": seeded, "seconds_to_settle": warm,
                              "creates": block, "creates_per_s": round(block / seconds, 1),
                              "server_cpu_ms_per_create": round((_cpu_seconds(server) - cpu) * 1000 / block, 2),
                              "load": load, "errors": len(errors), "first_error": errors[:1]}
    # idle from the steady state: the block's VMs counted and rendered (not against their render pass)
    run["seconds_to_settle_after_creates"] = await _settled(server, metrics, size + block)
    run["idle"] = await _idle(server, agents_pid, idle_s)
    run["idle_unary"] = await _idle_unary(server, agents_pid, idle_s, heartbeat)
    run["idle_server_ratio_stream_to_unary"] = _ratio(run["idle"], run["idle_unary"], "server_cpu_share")
    return run


async def index_rebuild(vms: int, nodes: int) -> dict[str, object]:
    """A SQLite store holding `vms` VM records (as the fleet run leaves them): how long the watched
    state index (the gauges' source, and the per-node index) takes to be ready after a restart, and the
    longest event-loop stall meanwhile; the same for one full reconcile pass."""
    with tempfile.TemporaryDirectory(prefix="scale-loops-index-") as tmp:
        store = await SqliteStore.open(Path(tmp) / "state.db", synchronous="NORMAL")
        try:
            await _seed(store, vms, nodes)
            out: dict[str, object] = {"vms": vms, "load_before": _load()}
            for name, work in (("index", _index_ready), ("full_reconcile_pass", _full_pass)):
                stop = asyncio.Event()
                ticker = asyncio.create_task(_max_stall(stop))
                t0, c0 = time.perf_counter(), time.process_time()
                await work(store)
                out[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
                out[f"{name}_cpu_seconds"] = round(time.process_time() - c0, 2)  # all threads; load does not change it
                stop.set()
                out[f"{name}_max_loop_stall_ms"] = round(await ticker * 1000, 1)
            out["load_after"] = _load()
            return out
        finally:
            await store.close()


async def _index_ready(store: Store) -> None:
    index = VmStates(store, 1.0)
    task = asyncio.create_task(index.run())
    while not index.ready:
        await asyncio.sleep(0.01)  # polling this process's own index
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _full_pass(store: Store) -> None:
    core = Core(store, ImageCatalog(store), LocalImageStore(Path(tempfile.gettempdir())), NodeRegistry(store, 15),
                AgentPool())
    await reconcile_once(core)


async def fleet(sizes: list[int], nodes: int, concurrency: int, heartbeat: float, idle_s: float,
                watch: float, block: int = BLOCK) -> dict[str, object]:
    blocks: list[dict[str, object]] = []
    at: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="scale-loops-fleet-") as tmp:
        root = Path(tmp)
        big = ("--vcpus", "4096", "--memory-mib", str(1 << 24), "--storage-gib", str(1 << 20))
        async with server_and_agents(root, GUEST_DIR, nodes, heartbeat, agent_args=big) as (server, api, agents):
            http = re.search(r'metrics_addr = "([^"]+)"', (root / "server.toml").read_text())
            assert http is not None
            metrics = f"http://{http.group(1)}"
            async with await PlasmaClient.connect(api) as client:
                errors: list[str] = []
                create = creator(client, "org-f", errors)
                done = 0
                for size in sizes:
                    while done < size:
                        load, cpu = _load(), _cpu_seconds(server)
                        seconds = await _calls(block, concurrency, lambda i, d=done: create(d + i))
                        done += block
                        spent = (_cpu_seconds(server) - cpu) * 1000 / block
                        blocks.append({"vms_after": done, "creates_per_s": round(block / seconds, 1),
                                       "server_cpu_ms_per_create": round(spent, 2), "load": load})
                    at[str(size)] = await _idle(server, agents.pid, idle_s)
                unary = await _idle_unary(server, agents.pid, idle_s, heartbeat)
                at["unary_at_largest"] = unary
                at["server_ratio_stream_to_unary"] = _ratio(at[str(sizes[-1])], unary, "server_cpu_share")
                rates = [float(b["creates_per_s"]) for b in blocks]  # type: ignore[arg-type]
                costs = [float(b["server_cpu_ms_per_create"]) for b in blocks]  # type: ignore[arg-type]
                restart = await _restart(server, api, metrics, nodes, watch)
    return {
        "nodes": nodes,
        "concurrency": concurrency,
        "heartbeat_interval_s": heartbeat,
        "blocks": blocks,
        "block_spread": _spread(rates),
        "server_cpu_per_create_spread": _spread(costs),
        "errors": len(errors),
        "first_error": errors[:1],
        "idle": at,
        "restart": restart,
    }


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--vms", default="10000,100000", help="sizes (multiples of --block) measured when reached")
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--heartbeat-interval", type=float, default=5.0)
    p.add_argument("--idle-seconds", type=float, default=30.0)
    p.add_argument("--restart-watch", type=float, default=60.0)
    p.add_argument("--heartbeat-vms", type=int, default=10_000)
    p.add_argument("--block", type=int, default=BLOCK, help="VMs per timed block (sizes are multiples of it)")
    p.add_argument("--seed", action="store_true",
                   help="grow the store to each size by writing VM records straight into it beside the running "
                        "server (one --block of API creates at each size) instead of creating them all through the API")
    args = p.parse_args()
    sizes = sorted(int(s) for s in args.vms.split(",") if s)
    compiled()
    beat = heartbeat_cost(args.heartbeat_vms)
    print(f"heartbeat: {json.dumps(beat)}", file=sys.stderr, flush=True)
    run = seeded_fleet if args.seed else fleet
    result = await run(sizes, args.nodes, args.concurrency, args.heartbeat_interval, args.idle_seconds,
                       args.restart_watch, args.block)
    emit(
        "fleet",
        index_rebuild=await index_rebuild(max(sizes), args.nodes),
        fleet=result,
        heartbeat=beat,
        targets={"block_spread": 0.15, "idle_server_cpu_share_at_100000": 0.15, "server_rss_mib": 300,
                 "seconds_to_correct_gauges": 5, "heartbeating_nodes_seen_not_ready": 0},
    )


if __name__ == "__main__":
    asyncio.run(main())
