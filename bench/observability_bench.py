"""What events and metrics cost on the 10,000-VM API run (`bench.scheduler_bench`'s part 2).

    .venv/bin/python -m bench.observability_bench [--vms 10000] [--nodes 1000] [--pairs 2]

Alternating runs in one invocation, each on a fresh server (SQLite) and fresh SIMULATED agents: `on`
(the defaults: VM events written with every change, the gRPC interceptor with per-RPC metrics, request
ids and log fields) and `off` (`[events] enabled = false`, `[server] rpc_metrics = false`). Prints each
run's wall time and the server process's CPU time over the creates, their medians and ratios (target:
on / off <= 1.05). On a shared, loaded machine the wall times swing with the load; the CPU time is
what the server itself spent, so its ratio is the steadier figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from pathlib import Path

from bench.common import emit
from bench.scheduler_bench import api_run
from tests.conftest import GUEST_DIR


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--vms", type=int, default=10_000)
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--pairs", type=int, default=2, help="on/off pairs, alternating")
    p.add_argument("--guest-dir", type=Path, default=GUEST_DIR)
    args = p.parse_args()
    runs: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    errors: dict[str, list[int]] = {"on": [], "off": []}
    for i in range(args.pairs * 2):
        mode = "on" if i % 2 == 0 else "off"
        off = mode == "off"
        result = await api_run(args.vms, args.nodes, args.concurrency, args.guest_dir, 5.0,
                               server_keys="rpc_metrics = false\n" if off else "",
                               extra_config="[events]\nenabled = false\n" if off else "", baseline=False)
        runs[mode].append(float(str(result["seconds"])))
        cpu[mode].append(float(str(result["server_cpu_seconds"])))
        errors[mode].append(int(str(result["errors"])))  # e.g. nodes gone NOT_READY on an overloaded machine
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    cpu_on, cpu_off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    emit("observability", vms=args.vms, nodes=args.nodes, concurrency=args.concurrency,
         load_average=os.getloadavg(),
         seconds_on=runs["on"], seconds_off=runs["off"], median_on=on, median_off=off,
         overhead_ratio=round(on / off, 3),
         server_cpu_seconds_on=cpu["on"], server_cpu_seconds_off=cpu["off"],
         cpu_overhead_ratio=round(cpu_on / cpu_off, 3), errors_on=errors["on"], errors_off=errors["off"],
         target_ratio=1.05)


if __name__ == "__main__":
    asyncio.run(main())
