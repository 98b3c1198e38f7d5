"""Reads at scale: GetVm by id and by name, and ListVms pages at any depth, at 10,000 and 100,000 VMs,
against a bare grpc.aio unary echo and a canned GetVm measured in the same run.

    .venv/bin/python -m bench.read_scale_bench [--sizes 10000,100000] [--calls 20000] [--concurrency 64]
        [--pages 300] [--rounds 4]

Layout: ONE server process (`plasmavmc.server.main`, SQLite store, IAM on: every call carries the
bootstrap admin's API key), the load from this process with `--concurrency` calls in flight. No agents
run: reads only. The GetVm sides `getvm_by_id` / `getvm_by_name` send serialized requests and take the
reply bytes as they come — the client work of the echo's client, so the ratio compares servers (20 VMs'
answers are parsed and checked first); `getvm_by_id_parsed` goes through the generated stub (request
message serialized, reply parsed into a `VirtualMachine`): what a client's conversion adds.

Seeding: the VM records and their name claims are written straight into the store file through the
store's own group commit (`SqliteStore.commit`, 1,000 VMs per commit) before the server starts — the
records a CreateVm would write (a STOPPED VM of one vCPU/256 MiB, labels, one project holding them all,
so the listing is as deep as the fleet). Creating 100,000 VMs through the API takes minutes and is what
the scheduler bench measures. The same store file grows from one size to the next.

Baselines, same run, same client code and concurrency, in the same minutes: GetVm by id, by name and the
two baselines are measured in `--rounds` interleaved rounds (`--calls` / rounds calls each, the order
turned each round, the baselines' process idle beside the server), each figure the median over rounds
and each ratio the median of the rounds' ratios, so that other load on the machine falls on both sides of
a ratio. `echo` — a grpc.aio server in another process
whose one unary method answers the request bytes as they came (no interceptors); `canned_getvm` — the
same process serving VmService.GetVm with one prebuilt VirtualMachine message (the size of a real one).
Both are generic handlers: a method registered by name (`add_registered_method_handlers`, what generated
`add_*Servicer_to_server` does) makes grpc.aio wait on one more future per call arrival, which costs every
call of the process (about 1.5 µs per registered method on this machine), and a bare echo has none.

The client process freezes what it holds before the rounds (`gc.freeze()`): at 100,000 VMs it holds a
million objects of its own, and its full GC passes landed in every side's p99.

Per size: calls/s and p50/p99 latency of GetVm by id and by name (random VMs), the ratio to echo, and the
server CPU per call (µs, which other load on the machine disturbs less than rates) beside the baselines';
ListVms pages of 100 at depths 0 %, 50 %, 90 %, 99.9 % (one call in flight: the latency of a page) with
p50/p99 and the worst, and filtered pages (a label a third of the VMs have, one node's VMs — one in a
thousand —, a state all have) at depths 0 % and 90 %; the seconds until GetVm is served from the watched
copy and until the copy rendered every listed VM (`plasmavmc_watched_underived` at 0), the server's idle
CPU then, and its RSS at the end; the server's garbage-collector passes during the GetVm rounds, per
generation (`server_gc_during_getvm`: passes, seconds, passes over 10 ms, from
`plasmavmc_gc_pause_seconds`) and the objects its GC policy froze (`server/gc_policy.py`). Layout: one
server process (`layout` in the JSON); the baselines run in one process too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from bench.common import emit
from plasmavmc.config.credentials import default_credential
from plasmavmc.store import keys
from plasmavmc.store.base import Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types import codec
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, HypervisorType, MemorySpec, VirtualMachine, VmSpec
from plasmavmc.v1 import types_pb2, vm_pb2, vm_pb2_grpc
from plasmavmc.wire.convert import to_proto
from tests.conftest import GUEST_DIR, Proc
from tests.ports import free_port

ORG, PROJECT = "org-read", "proj-read"
SEED_CHUNK = 1000
SPEC = VmSpec(cpu=CpuSpec(vcpus=1), memory=MemorySpec(size_mib=256),
              disks=(DiskSpec(id="root", source=DiskSource(image_id="plasmavmc-tiny"), size_gib=1),))
ECHO = "/bench.Echo/Echo"
GET_VM = "/plasmavmc.v1.VmService/GetVm"


def progress(what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def _vm(i: int) -> VirtualMachine:
    now = int(time.time())
    return VirtualMachine(
        id=str(uuid.uuid4()), name=f"vm-{i:06d}", org_id=ORG, project_id=PROJECT, state=VmState.STOPPED,
        spec=SPEC, node_id=f"sim-{i % 1000:04d}", hypervisor=HypervisorType.SIMULATED, created_at=now,
        updated_at=now, created_by="admin", labels={"tier": ("web", "db", "cache")[i % 3], "n": str(i % 100)},
    )


async def seed(path: Path, start: int, stop: int) -> list[VirtualMachine]:
    """VMs start..stop-1 written into the store file, 1,000 per group commit."""
    store = await SqliteStore.open(path, synchronous="NORMAL")
    made: list[VirtualMachine] = []
    try:
        for first in range(start, stop, SEED_CHUNK):
            vms = [_vm(i) for i in range(first, min(stop, first + SEED_CHUNK))]
            writes = [Write(keys.vm(ORG, PROJECT, vm.id), codec.dumps(vm), 0) for vm in vms]
            writes += [Write(keys.vm_name(ORG, PROJECT, vm.name), vm.id.encode(), 0) for vm in vms]
            await store.commit(writes)
            made.extend(vms)
    finally:
        await store.close()
    return made


# -- the server and the baselines ---------------------------------------------------------------------


def start_server(root: Path, db: Path) -> tuple[Proc, str, str]:
    api, http = free_port(), free_port()
    cfg = root / "server.toml"
    cfg.write_text(
        f'[server]\naddr = "127.0.0.1:{api}"\nmetrics_addr = "127.0.0.1:{http}"\n'
        f'console_addr = "127.0.0.1:{free_port()}"\n[store]\nbackend = "sqlite"\npath = "{db}"\n'
        f'[image_store]\nbackend = "local"\npath = "{root}/images"\nseed_dirs = ["{GUEST_DIR}"]\n'
        f'[scheduler]\ndefault_hypervisor = "simulated"\n[logging]\nlevel = "warning"\nformat = "text"\n'
    )
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(cfg)], root / "server.log")
    server.start()
    return server, f"127.0.0.1:{api}", f"http://127.0.0.1:{http}"


async def serve_baselines(port: int) -> None:
    """`--serve-baselines`: the echo method and a canned GetVm, no interceptors."""
    canned = to_proto(_vm(0), types_pb2.VirtualMachine())

    class Canned(vm_pb2_grpc.VmServiceServicer):
        async def GetVm(self, request: Any, context: Any) -> Any:
            return canned

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.aio.server()  # generic handlers only: no registered method makes grpc wait on its future
    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    get_vm = grpc.unary_unary_rpc_method_handler(Canned().GetVm, vm_pb2.GetVmRequest.FromString,
                                                 types_pb2.VirtualMachine.SerializeToString)
    canned_service = grpc.method_handlers_generic_handler("plasmavmc.v1.VmService", {"GetVm": get_vm})
    server.add_generic_rpc_handlers((handler, canned_service))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("READY", flush=True)
    await server.wait_for_termination()


def stop(server: Proc) -> None:
    """SIGTERM, then SIGKILL if the server is still busy after 30 s."""
    try:
        server.stop()
    except AssertionError as err:
        progress(f"{err}: killing it")
        server.kill(signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(pids: list[int], calls: int, concurrency: int, call: Call) -> dict[str, float]:
    """`load`, with the CPU the server processes `pids` and this client process spent per call (µs: robust
    to other load; on an idle machine the rate is about 1 / the larger of the two, as each side is one
    event loop)."""
    before, client = sum(cpu_seconds(pid) for pid in pids), time.process_time()
    out = await load(calls, concurrency, call)
    out["server_cpu_us_per_call"] = round(1e6 * (sum(cpu_seconds(pid) for pid in pids) - before) / calls, 1)
    out["client_cpu_us_per_call"] = round(1e6 * (time.process_time() - client) / calls, 1)
    return out


def rss_mib(proc: Proc) -> float:
    assert proc.popen is not None
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def metric(http: str, name: str) -> float:
    with urllib.request.urlopen(f"{http}/metrics", timeout=120) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def gc_pauses(http: str) -> dict[str, float]:
    """The server's `plasmavmc_gc_pause_seconds` samples (`observe/gcpauses.py`), by their full name."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=120) as resp:
        lines = resp.read().decode().splitlines()
    return {k: float(v) for k, _, v in (line.rpartition(" ") for line in lines)
            if k.startswith("plasmavmc_gc_pause_seconds")}


def gc_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per generation, the collector's passes between two scrapes: how many, their seconds in all, and
    how many took over 10 ms (those land in the p99 of the calls in flight)."""
    def moved(name: str, generation: int, extra: str = "") -> float:
        key = f'plasmavmc_gc_pause_seconds_{name}{{generation="{generation}"{extra}}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    return {str(g): {"passes": moved("count", g), "seconds": round(moved("sum", g), 3),
                     "over_10ms": moved("count", g) - moved("bucket", g, ',le="0.01"')} for g in range(3)}


# -- load -------------------------------------------------------------------------------------------------


Call = Callable[[int], Awaitable[Any]]


async def load(calls: int, concurrency: int, call: Call) -> dict[str, float]:
    """`calls` calls with `concurrency` in flight: rate, p50/p99/max latency (ms)."""
    todo = list(range(calls))
    latencies: list[float] = []
    errors = [0]

    async def worker() -> None:
        while todo:
            i = todo.pop()
            began = time.perf_counter()
            try:
                await call(i)
            except grpc.aio.AioRpcError:
                errors[0] += 1
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "per_s": round(calls / seconds, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
        "max_ms": round(1000 * latencies[-1], 2),
        "errors": errors[0],
    }


async def until_cached(stub: vm_pb2_grpc.VmServiceStub, http: str, vm: VirtualMachine, auth: Any) -> float:
    """Seconds until GetVm is answered from the watched copy (the server listed every VM)."""
    began = time.perf_counter()
    ref = vm_pb2.GetVmRequest(vm=vm_pb2.VmRef(org_id=ORG, project_id=PROJECT, vm_id=vm.id))
    while time.perf_counter() - began < 900:
        try:
            await stub.GetVm(ref, metadata=auth, timeout=60)
            if await asyncio.to_thread(metric, http, 'plasmavmc_vm_reads_total{source="cache"}') > 0:
                return time.perf_counter() - began
        except (grpc.aio.AioRpcError, OSError) as err:  # a server busy listing 100,000 VMs may time out
            progress(f"  not yet: {type(err).__name__}")
        await asyncio.sleep(0.5)  # polling the server's metrics, with a deadline
    raise RuntimeError("GetVm never came from the watched copy")


@contextlib.asynccontextmanager
async def baseline_server() -> AsyncIterator[tuple[int, str]]:
    """The baselines' process (`--serve-baselines`): its pid and address, for as long as the block runs."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.read_scale_bench", "--serve-baselines", str(port), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        if not (await asyncio.wait_for(proc.stdout.readline(), 60)).startswith(b"READY"):
            raise RuntimeError("the baseline server did not start")
        yield proc.pid, f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Rounds of one side as one answer: the median of each figure, the worst latency, the errors, and
    each round's rate."""
    out: dict[str, Any] = {k: _median([r[k] for r in runs]) for k in runs[0] if k not in ("max_ms", "errors")}
    out["max_ms"] = max(r["max_ms"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["rounds_per_s"] = [r["per_s"] for r in runs]
    return out


async def interleaved(sides: dict[str, tuple[list[int], Call]], rounds: int, calls: int,
                      concurrency: int) -> dict[str, list[dict[str, float]]]:
    """Every side measured once per round (`calls` / `rounds` calls each), the order turned by one each
    round, so that what else the machine does falls on every side alike."""
    names = list(sides)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            pids, call = sides[name]
            runs[name].append(await measured(pids, max(1, calls // rounds), concurrency, call))
    return runs


def ratios(runs: dict[str, list[dict[str, float]]], name: str, figure: str = "per_s") -> float:
    """The median over rounds of `name`'s `figure` over the echo's in the same round."""
    return round(_median([a[figure] / b[figure] for a, b in zip(runs[name], runs["echo"], strict=True)]), 2)


async def reads(api: str, http: str, server: Proc, vms: list[VirtualMachine], calls: int,
                concurrency: int, pages: int, base: tuple[int, str], rounds: int) -> dict[str, Any]:
    auth = (("authorization", f"Bearer {default_credential()}"),)
    rng = random.Random(19)
    ids = sorted(vm.id for vm in vms)
    out: dict[str, Any] = {"vms": len(vms)}
    async with grpc.aio.insecure_channel(api) as channel:
        stub = vm_pb2_grpc.VmServiceStub(channel)
        progress("until GetVm comes from the watched copy")
        out["seconds_until_served_from_cache"] = round(await until_cached(stub, http, vms[0], auth), 2)
        assert server.popen is not None
        progress("until the copy rendered every listed VM")
        out["seconds_until_rendered"] = await until_rendered(http)
        out["server_idle_cpu_pct"] = await idle_cpu(server.popen.pid)

        raw = channel.unary_unary(GET_VM)  # bytes in, bytes out: the client work of the echo's client

        def get(by: Callable[[VirtualMachine], str], parsed: bool = False) -> Call:
            picks = [get_vm_request(by(rng.choice(vms))) for _ in range(calls)]
            if parsed:
                requests = [vm_pb2.GetVmRequest.FromString(data) for data in picks]
                return lambda i: stub.GetVm(requests[i], metadata=auth)
            return lambda i: raw(picks[i], metadata=auth)

        progress("GetVm, interleaved with the baselines")
        await answers_right(raw, auth, vms[:20])
        before = await asyncio.to_thread(gc_pauses, http)
        ours = {"getvm_by_id": get(lambda vm: vm.id), "getvm_by_name": get(lambda vm: vm.name),
                "getvm_by_id_parsed": get(lambda vm: vm.id, parsed=True)}
        out.update(await getvm_rounds(base, [server.popen.pid], ours, vms[0], calls, concurrency, rounds))
        out["server_gc_during_getvm"] = gc_delta(before, await asyncio.to_thread(gc_pauses, http))
        out["server_gc_frozen_objects"] = metric(http, "plasmavmc_gc_frozen_objects")
        progress("ListVms")
        out["list_pages"] = {}
        for depth in (0.0, 0.5, 0.9, 0.999):
            token = ids[int(depth * len(ids)) - 1] if depth else ""
            request = vm_pb2.ListVmsRequest(org_id=ORG, project_id=PROJECT, page_size=100, page_token=token)
            out["list_pages"][f"{depth:.1%}"] = await load(
                pages, 1, lambda i, r=request: stub.ListVms(r, metadata=auth)  # type: ignore[misc]
            )
        out["filtered_pages"] = await filtered_pages(stub, auth, ids, pages)
        out["from_cache"] = metric(http, 'plasmavmc_vm_reads_total{source="cache"}')
        out["from_store"] = metric(http, 'plasmavmc_vm_reads_total{source="store"}')
    out["server_rss_mib"] = rss_mib(server)
    return out


def get_vm_request(vm: str) -> bytes:
    """A serialized GetVmRequest for the VM `vm` (an id or a name) of the bench's project."""
    return vm_pb2.GetVmRequest(vm=vm_pb2.VmRef(org_id=ORG, project_id=PROJECT, vm_id=vm)).SerializeToString()


async def answers_right(raw: Any, auth: Any, vms: list[VirtualMachine]) -> None:
    """The raw GetVm answers the bench times are the VMs asked for, by id and by name."""
    for vm in vms:
        for ref in (vm.id, vm.name):
            got = types_pb2.VirtualMachine.FromString(await raw(get_vm_request(ref), metadata=auth, timeout=60))
            if (got.id, got.name) != (vm.id, vm.name):
                raise RuntimeError(f"GetVm {ref} answered {got.id} {got.name}")


async def getvm_rounds(base: tuple[int, str], server: list[int], ours: dict[str, Call], vm: VirtualMachine,
                       calls: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """The server's GetVm sides (`ours`), the echo and the canned GetVm, in interleaved rounds."""
    pid, addr = base
    async with grpc.aio.insecure_channel(addr) as channel:
        echo = channel.unary_unary(ECHO)
        canned = vm_pb2_grpc.VmServiceStub(channel)
        request = vm_pb2.GetVmRequest(vm=vm_pb2.VmRef(org_id=ORG, project_id=PROJECT, vm_id=vm.id))
        payload = request.SerializeToString()
        theirs: list[tuple[str, Call]] = [("echo", lambda i: echo(payload)),
                                          ("canned_getvm", lambda i: canned.GetVm(request))]
        sides: dict[str, tuple[list[int], Call]] = {}
        for i, (name, call) in enumerate(ours.items()):  # the two processes' sides alternate
            if i < len(theirs):
                sides[theirs[i][0]] = ([pid], theirs[i][1])
            sides[name] = (server, call)
        for _, call in sides.values():
            await load(300, concurrency, call)  # warm-up
        gc.collect()  # this client holds every seeded VM (a million objects at 100,000): frozen, its own
        gc.freeze()  # full GC passes no longer land in the latencies it measures (a bench process: no leak)
        runs = await interleaved(sides, rounds, calls, concurrency)
    out: dict[str, Any] = {name: summary(runs[name]) for name in ours}
    out["baselines"] = {name: summary(runs[name]) for name in ("echo", "canned_getvm")}
    for name in ours:
        out[f"{name}_ratio_to_echo"] = ratios(runs, name)
        out[f"{name}_server_cpu_to_echo"] = ratios(runs, name, "server_cpu_us_per_call")  # robust to load
    return out


FILTERS = {  # ListVms filters of every selectivity: a third of the VMs, one in a thousand, all of them
    "label_tier_db": {"labels": {"tier": "db"}},
    "node_sim_0007": {"node_ids": ["sim-0007"]},
    "state_stopped": {"states": [types_pb2.VM_STATE_STOPPED]},
}


async def filtered_pages(stub: vm_pb2_grpc.VmServiceStub, auth: Any, ids: list[str], pages: int) -> dict[str, Any]:
    """Filtered ListVms pages of 100 at depths 0 % and 90 %, one call in flight."""
    out: dict[str, Any] = {}
    for name, where in FILTERS.items():
        for depth in (0.0, 0.9):
            token = ids[int(depth * len(ids)) - 1] if depth else ""
            request = vm_pb2.ListVmsRequest(org_id=ORG, project_id=PROJECT, page_size=100, page_token=token,
                                            **where)  # type: ignore[arg-type]
            out[f"{name} at {depth:.0%}"] = await load(
                pages, 1, lambda i, r=request: stub.ListVms(r, metadata=auth)  # type: ignore[misc]
            )
    return out


UNDERIVED = 'plasmavmc_watched_underived{prefix="plasmavmc/vms/"}'


async def until_rendered(http: str, timeout: float = 900) -> float:
    """Seconds until the watched copy's background pass rendered every listed VM."""
    began = time.perf_counter()
    while await asyncio.to_thread(metric, http, UNDERIVED) > 0 or time.perf_counter() - began < 1:
        if time.perf_counter() - began > timeout:
            raise RuntimeError("the watched copy never rendered every VM")
        await asyncio.sleep(0.5)  # polling the server's metrics, with a deadline
    return round(time.perf_counter() - began, 1)


async def idle_cpu(pid: int, window: float = 5.0) -> float:
    """The server's CPU % of one core over `window` seconds with no calls (its background loops)."""
    cpu = cpu_seconds(pid)
    await asyncio.sleep(window)  # measuring CPU over a window
    return round(100 * (cpu_seconds(pid) - cpu) / window, 1)


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def ready(http: str, server: Proc, timeout: float = 600) -> None:
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        assert server.popen is not None
        if server.popen.poll() is not None:
            raise RuntimeError(f"server exited:\n{server.log.read_text()[-3000:]}")
        if await asyncio.to_thread(_ok, f"{http}/health"):  # /ready also wants a node online: none here
            return
        await asyncio.sleep(0.2)  # polling the server, with a deadline
    raise RuntimeError("server not ready")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--pages", type=int, default=300)
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds of GetVm and the baselines")
    p.add_argument("--serve-baselines", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_baselines:
        await serve_baselines(args.serve_baselines)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="pv-read-scale-") as tmp:
        root, vms = Path(tmp), list[VirtualMachine]()
        for size in (int(n) for n in args.sizes.split(",") if n):
            began = time.perf_counter()
            progress(f"seeding to {size} VMs")
            vms += await seed(root / "state.db", len(vms), size)
            seeded = time.perf_counter() - began
            progress("server")
            phase: dict[str, Any] = {"seed_seconds": round(seeded, 1)}
            async with baseline_server() as base:
                server, api, http = start_server(root, root / "state.db")
                began = time.perf_counter()
                try:
                    await ready(http, server)
                    phase["seconds_to_health"] = round(time.perf_counter() - began, 2)
                    phase.update(await reads(api, http, server, vms, args.calls, args.concurrency, args.pages, base,
                                             args.rounds))
                except Exception as err:  # report what was measured, and why the rest was not
                    phase["error"] = f"{type(err).__name__}: {err}"
                finally:
                    stop(server)
            phase["load_average"] = os.getloadavg()
            results.append(phase)
            progress(f"phase done: {phase}")
    emit("read_scale", layout="one server process (SQLite), IAM on, load from one client process",
         concurrency=args.concurrency, calls=args.calls, phases=results,
         targets={"getvm_ratio_to_echo": 0.8, "getvm_p99_ms": 50, "list_page_p99_ms": 20})


if __name__ == "__main__":
    asyncio.run(main())
