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
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

from bench.common import emit
from bench.scheduler_bench import api_run
from tests.conftest import GUEST_DIR

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
    args = p.parse_args()
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
