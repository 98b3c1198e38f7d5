"""What events and metrics cost on the 10,000-VM API run (`bench.scheduler_bench`'s part 2).

    .venv/bin/python -m bench.observability_bench [--vms 10000] [--nodes 1000] [--pairs 2]

Rounds alternate on / off / on / off ... in one invocation, each on a fresh server (SQLite) and
fresh SIMULATED agents (one process, `--nodes` nodes heartbeating every 5 s), so the machine's noise
falls on both sides alike. `on` is the default configuration: a VM event written with every change (in
the same commit) and the observing gRPC interceptor (request ids, log fields, per-RPC count and
latency). `off` is the documented switch pair `[events] enabled = false` + `[server] rpc_metrics =
false`. The rest is the same on both sides (the spec's metrics set by core code; the watched index of
VM states the leader's reconcile needs anyway).

Per round: wall time of the creates and the server process's CPU seconds over them (user + system, from
/proc). The server also works while no call runs (1,000 heartbeats every 5 s, the loops), and that part
grows with the wall time, which swings with the machine's load (on a loaded 2-core machine it can be most
of the CPU: `--heartbeat-interval` makes it smaller, equally on both sides): so each round also measures the server's
idle CPU rate for `--idle` seconds just before and just after the creates, and `create_cpu_seconds` is
the CPU over the creates less the mean of the two rates times the wall time. Per pair (an `on` round and
the `off` round right after it): the on / off ratios of wall time, raw CPU, create CPU and idle rate
(the idle rate carries the interceptor's cost on heartbeats). The figures are the medians of the pair
ratios (target <= 1.05).

`--side-by-side` (what the README's figure comes from): rounds in turn swing with the machine's load by
more than the effect (on a shared 2-core machine the same configuration measured 72-95 s of create
CPU). So both servers run AT ONCE instead — an `on` cluster and an `off` cluster, each a server and
its `--nodes` simulated agents — and the creates go to both in lockstep blocks of `--block` (each
block to both sides concurrently, `--concurrency` in flight on each), so whatever else the machine
does falls on both in the same seconds. Per side: its server's CPU over the creates less its idle
rate (measured on both at the same time, before and after) times the window: `create_cpu_ratio`
= on / off (target <= 1.05), with the raw CPU ratio and the per-block ratios beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit
from bench.scheduler_bench import _calls, _cpu_seconds, _idle_cpu_rate, api_run, creator, server_and_agents
from plasmavmc.client import PlasmaClient
from tests.conftest import GUEST_DIR, Proc

OFF_SERVER_KEYS = "rpc_metrics = false\n"
OFF_CONFIG = "[events]\nenabled = false\n"


async def _round(mode: str, args: argparse.Namespace) -> dict[str, object]:
    off = mode == "off"
    timeout = f"[agents]\nheartbeat_timeout_seconds = {max(15, round(3 * args.heartbeat_interval))}\n"
    result = await api_run(args.vms, args.nodes, args.concurrency, args.guest_dir, args.heartbeat_interval,
                           server_keys=OFF_SERVER_KEYS if off else "",
                           extra_config=timeout + (OFF_CONFIG if off else ""), baseline=False, idle_seconds=args.idle)
    rates = [float(r) for r in result["server_idle_cpu_rates"]]  # type: ignore[attr-defined]
    seconds, cpu = float(str(result["seconds"])), float(str(result["server_cpu_seconds"]))
    return {"mode": mode, "load_average": [round(x, 1) for x in os.getloadavg()],
            **{k: result[k] for k in ("seconds", "server_cpu_seconds", "errors", "vms_counted_in_quota")},
            "idle_cpu_rates": rates, "idle_cpu_rate": round(statistics.mean(rates), 3),
            "create_cpu_seconds": round(cpu - statistics.mean(rates) * seconds, 2)}


def _ratio(rounds: list[dict[str, object]], figure: str) -> list[float]:
    """on / off of `figure` for each pair of consecutive rounds."""
    return [round(float(str(rounds[i][figure])) / float(str(rounds[i + 1][figure])), 3)
            for i in range(0, len(rounds) - 1, 2)]


def _config(mode: str, heartbeat: float) -> tuple[str, str]:
    """(server keys, extra config) of a side."""
    timeout = f"[agents]\nheartbeat_timeout_seconds = {max(15, round(3 * heartbeat))}\n"
    return (OFF_SERVER_KEYS, timeout + OFF_CONFIG) if mode == "off" else ("", timeout)


async def _both_idle(servers: list[Proc], seconds: float) -> list[float]:
    return list(await asyncio.gather(*(_idle_cpu_rate(s, seconds) for s in servers)))


async def _side_by_side(args: argparse.Namespace) -> dict[str, object]:
    """Both clusters at once, creates in lockstep blocks (see the module docstring)."""
    modes = ("on", "off")
    async with contextlib.AsyncExitStack() as stack:
        servers: list[Proc] = []
        clients: list[PlasmaClient] = []
        for mode in modes:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            keys, extra = _config(mode, args.heartbeat_interval)
            cluster = server_and_agents(root, args.guest_dir, args.nodes, args.heartbeat_interval, keys, extra)
            server, api, _ = await stack.enter_async_context(cluster)
            servers.append(server)
            clients.append(await stack.enter_async_context(await PlasmaClient.connect(api)))
        errors: list[list[str]] = [[], []]
        creates = [creator(c, "org-b", e) for c, e in zip(clients, errors, strict=True)]
        before = await _both_idle(servers, args.idle)
        cpu0, started = [_cpu_seconds(s) for s in servers], time.perf_counter()
        walls: list[list[float]] = [[], []]
        block_cpu: list[list[float]] = [[], []]
        for start in range(0, args.vms, args.block):
            count, at = min(args.block, args.vms - start), [_cpu_seconds(s) for s in servers]
            took = await asyncio.gather(*(_calls(count, args.concurrency, lambda j, c=c, o=start: c(o + j))
                                          for c in creates))
            for side in (0, 1):
                walls[side].append(took[side])
                block_cpu[side].append(_cpu_seconds(servers[side]) - at[side])
        window = time.perf_counter() - started
        cpu = [_cpu_seconds(s) - c for s, c in zip(servers, cpu0, strict=True)]
        after = await _both_idle(servers, args.idle)
        used = [(await c.get_quota("org-b")).usage.vms for c in clients]
    idle = [statistics.mean(pair) for pair in zip(before, after, strict=True)]
    create_cpu = [cpu[i] - idle[i] * window for i in (0, 1)]
    sides = {mode: {"server_cpu_seconds": round(cpu[i], 2), "idle_cpu_rates": [round(before[i], 3), round(after[i], 3)],
                    "create_cpu_seconds": round(create_cpu[i], 2), "create_seconds": round(sum(walls[i]), 2),
                    "errors": len(errors[i]), "first_error": errors[i][:1], "vms_counted_in_quota": used[i]}
             for i, mode in enumerate(modes)}
    return {"layout": "side by side", "window_seconds": round(window, 2), "sides": sides,
            "create_cpu_ratio": round(create_cpu[0] / create_cpu[1], 3),
            "cpu_ratio": round(cpu[0] / cpu[1], 3),
            "wall_ratio": round(sum(walls[0]) / sum(walls[1]), 3),
            "idle_cpu_ratio": round(idle[0] / idle[1], 3) if idle[1] else None,
            "block_cpu_ratios": [round(a / b, 3) for a, b in zip(block_cpu[0], block_cpu[1], strict=True) if b],
            "load_average_end": [round(x, 1) for x in os.getloadavg()], "target_ratio": 1.05}


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--vms", type=int, default=10_000)
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--pairs", type=int, default=2, help="on/off pairs, alternating")
    p.add_argument("--heartbeat-interval", type=float, default=5.0,
                   help="of each simulated node (the node timeout is set to 3 times it, at least 15 s)")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of each idle CPU measurement")
    p.add_argument("--guest-dir", type=Path, default=GUEST_DIR)
    p.add_argument("--side-by-side", action="store_true", help="both servers at once, creates in lockstep blocks")
    p.add_argument("--block", type=int, default=500, help="creates per lockstep block (--side-by-side)")
    args = p.parse_args()
    if args.side_by_side:
        emit("observability", vms=args.vms, nodes=args.nodes, concurrency=args.concurrency,
             heartbeat_interval_s=args.heartbeat_interval, **await _side_by_side(args))
        return
    rounds = []
    for i in range(args.pairs * 2):
        rounds.append(await _round("on" if i % 2 == 0 else "off", args))
        print(f"round {i + 1}: {rounds[-1]}", file=sys.stderr, flush=True)  # progress of a long run
    pairs = {name: _ratio(rounds, figure) for name, figure in (
        ("wall", "seconds"), ("cpu", "server_cpu_seconds"), ("create_cpu", "create_cpu_seconds"),
        ("idle_cpu", "idle_cpu_rate"))}
    emit("observability", vms=args.vms, nodes=args.nodes, concurrency=args.concurrency, rounds=rounds,
         pair_ratios=pairs, **{f"{name}_overhead_ratio": statistics.median(r) for name, r in pairs.items()},
         load_average_end=[round(x, 1) for x in os.getloadavg()], target_ratio=1.05)


if __name__ == "__main__":
    asyncio.run(main())
