"""How well `--wait` bounds a CLI command: `plasmavmc vm stop VM --wait W` against a guest that ignores
the ACPI power button (so the server-side stop would run for its whole timeout), compared with the
CLI's own start-up (`plasmavmc --version`).

    .venv/bin/python -m bench.cli_wait [--runs 5] [--wait 0.05]

A real server (SQLite) with a SIMULATED node; the CLI runs as a process, as a user runs it. Prints one
JSON document: medians and samples of both, and the overshoot (stop minus start-up minus wait).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit, median
from plasmavmc.types.node import NodeCapacity
from plasmavmc.types.states import VmState
from tests.conftest import GUEST_DIR
from tests.e2e.simulated import SIM, sim_cluster, sim_spec


async def _cli(api: str, *argv: str) -> float:
    env = {**os.environ, "PLASMAVMC_ENDPOINT": api, "PLASMAVMC_CLI_CONFIG": "/nonexistent.toml"}
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "plasmavmc.cli", *argv, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await proc.wait()
    return time.perf_counter() - started


async def main(runs: int, wait: float) -> None:
    startup: list[float] = []
    stops: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with sim_cluster(Path(tmp), GUEST_DIR, [("sim-1", NodeCapacity(64, 65536, 1000), {})]) as c:
            backend = c.fleet.backends["sim-1"]
            for i in range(runs):
                vm = await c.client.create_vm(f"w{i}", "default", "default", sim_spec(), SIM)
                await c.client.wait_for_state("default", "default", vm.id, {VmState.STOPPED}, 60)
                await c.client.start_vm("default", "default", vm.id)
                backend.ignores_acpi.add(vm.id)
                startup.append(await _cli(c.api, "--version"))
                stops.append(await _cli(c.api, "vm", "stop", vm.id, "--timeout", "600", "--wait", str(wait)))
                backend.ignores_acpi.discard(vm.id)
                backend.power_off(vm.id)
    emit("cli_wait", wait_s=wait, runs=runs, cli_startup_median_s=round(median(startup), 3),
         stop_median_s=round(median(stops), 3), overshoot_median_s=round(median(stops) - median(startup) - wait, 3),
         startup_samples=[round(s, 3) for s in startup], stop_samples=[round(s, 3) for s in stops])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="samples of each (default: %(default)s)")
    parser.add_argument("--wait", type=float, default=0.05, help="the --wait given to vm stop (default: %(default)s)")
    options = parser.parse_args()
    asyncio.run(main(options.runs, options.wait))
