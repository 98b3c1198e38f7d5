"""A real control plane (server process, SQLite, the project's guest image seeded) with SIMULATED agents
in the test process: for scheduler, quota and node tests that need many nodes and VMs, never for a
test that claims a VM booted."""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from plasmavmc.agent.simulated import SimulatedFleet, simulated_node
from plasmavmc.client import PlasmaClient
from plasmavmc.types.node import NodeCapacity
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, HypervisorType, MemorySpec, PlacementSpec, VmSpec
from tests.conftest import Proc
from tests.e2e.helpers import GUEST_IMAGE
from tests.ports import free_port

T = TypeVar("T")
SIM = HypervisorType.SIMULATED
NodeSpec = tuple[str, NodeCapacity, dict[str, str]]  # id, capacity, labels


def sim_spec(vcpus: int = 1, memory_mib: int = 256, placement: PlacementSpec | None = None) -> VmSpec:
    return VmSpec(
        cpu=CpuSpec(vcpus=vcpus),
        memory=MemorySpec(size_mib=memory_mib),
        disks=(DiskSpec(id="root", source=DiskSource(image_id=GUEST_IMAGE), size_gib=1),),
        placement=placement or PlacementSpec(),
    )


@dataclass
class SimCluster:
    root: Path
    api: str
    server: Proc
    fleet: SimulatedFleet
    client: PlasmaClient
    http: str = ""  # http://host:port of /health, /ready, /metrics

    def logs(self) -> str:
        return self.server.log.read_text()[-4000:]


async def until(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float, what: str) -> T:
    """Poll `probe` until `ok` holds of its value; fails with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s; last: {value}")
        await asyncio.sleep(0.2)  # polling the server with a deadline


async def _poll_http(url: str, timeout: float, server: Proc) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.popen is not None
        if server.popen.poll() is not None:
            raise AssertionError(f"server exited:\n{server.log.read_text()[-3000:]}")
        try:
            with await asyncio.to_thread(urllib.request.urlopen, url, None, 2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.1)  # polling an external process with a deadline
    raise AssertionError(f"{url} not OK in {timeout}s:\n{server.log.read_text()[-3000:]}")


@asynccontextmanager
async def sim_cluster(
    root: Path,
    guest: Path,
    node_specs: Sequence[NodeSpec],
    *,
    heartbeat_timeout: int = 15,
    heartbeat_interval: float = 1.0,
    store_toml: str | None = None,
) -> AsyncIterator[SimCluster]:
    """`store_toml`: the `[store]` section (default: SQLite under `root`)."""
    api, http, agents = free_port(), free_port(), free_port()
    cfg = root / "server.toml"
    store = store_toml or f'[store]\nbackend = "sqlite"\npath = "{root}/state.db"\n'
    cfg.write_text(
        f'[server]\naddr = "127.0.0.1:{api}"\nmetrics_addr = "127.0.0.1:{http}"\n'
        f'console_addr = "127.0.0.1:{free_port()}"\n{store}'
        f'[image_store]\nbackend = "local"\npath = "{root}/images"\nseed_dirs = ["{guest}"]\n'
        f'[scheduler]\ndefault_hypervisor = "simulated"\n'
        f"[agents]\nheartbeat_timeout_seconds = {heartbeat_timeout}\n"
        f'[logging]\nlevel = "warning"\nformat = "text"\n'
    )
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(cfg)], root / "server.log")
    server.start()
    addr = f"127.0.0.1:{agents}"
    nodes = [simulated_node(node_id, addr, cap, labels) for node_id, cap, labels in node_specs]
    fleet: SimulatedFleet | None = None
    try:
        fleet = SimulatedFleet(f"127.0.0.1:{api}", addr, nodes, root / "cache", heartbeat_interval)
        await _poll_http(f"http://127.0.0.1:{http}/health", 30, server)
        await fleet.start()
        await _poll_http(f"http://127.0.0.1:{http}/ready", 30, server)
        async with await PlasmaClient.connect(f"127.0.0.1:{api}") as client:
            yield SimCluster(root, f"127.0.0.1:{api}", server, fleet, client, f"http://127.0.0.1:{http}")
    finally:
        if fleet is not None:
            await fleet.stop()
        server.stop()
