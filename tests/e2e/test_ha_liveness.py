"""Node liveness across a leader change: two server replicas on one real etcd, SIMULATED agents.

Liveness is the leader's in-memory table (`core/nodes/liveness.py`): a heartbeat that changes nothing
but the time writes nothing to the store, and a replica that takes leadership gives every node a full
timeout of grace. Here 20 simulated nodes heartbeat to replica A (the leader): their records are not
rewritten heartbeat after heartbeat; A is killed; B takes over, and not one node that keeps
heartbeating is marked NOT_READY, while a node that stops is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from plasmavmc.agent.simulated import SimulatedFleet, simulated_node
from plasmavmc.client import PlasmaClient
from plasmavmc.store import keys
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.types.node import NodeCapacity, NodeState
from tests.conftest import Proc
from tests.e2e.simulated import until
from tests.etcd import EtcdCluster, needs_etcd
from tests.ports import free_port

pytestmark = [needs_etcd]
NODES = [f"sim-{i:02d}" for i in range(20)]
TIMEOUT = 4  # heartbeat timeout, seconds
INTERVAL = 0.5  # heartbeat interval of the simulated nodes


@dataclass
class Replica:
    api: str
    http: str
    proc: Proc

    async def body(self) -> dict[str, object]:
        """The /ready body (any status), or {} while it does not answer."""

        def get() -> dict[str, object]:
            try:
                with urllib.request.urlopen(f"{self.http}/ready", timeout=2) as resp:
                    body: dict[str, object] = json.loads(resp.read())
                    return body
            except urllib.error.HTTPError as err:
                failed: dict[str, object] = json.loads(err.read())
                return failed
            except OSError:
                return {}

        return await asyncio.to_thread(get)


def replica(root: Path, name: str, etcd: EtcdCluster, guest: Path) -> Replica:
    api, http = free_port(), free_port()
    endpoints = ", ".join(f'"{u}"' for u in etcd.endpoints)
    cfg = root / f"{name}.toml"
    cfg.write_text(
        f'[server]\naddr = "127.0.0.1:{api}"\nmetrics_addr = "127.0.0.1:{http}"\n'
        f'console_addr = "127.0.0.1:{free_port()}"\n'
        f'[store]\nbackend = "etcd"\nendpoints = [{endpoints}]\nlease_ttl_seconds = 3\n'
        f'[image_store]\nbackend = "local"\npath = "{root}/images"\nseed_dirs = ["{guest}"]\n'
        f'[scheduler]\ndefault_hypervisor = "simulated"\n'
        f"[agents]\nheartbeat_timeout_seconds = {TIMEOUT}\n"
        f'[logging]\nlevel = "info"\nformat = "text"\n'
    )
    proc = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(cfg)], root / f"{name}.log")
    proc.start()
    return Replica(f"127.0.0.1:{api}", f"http://127.0.0.1:{http}", proc)


@asynccontextmanager
async def two_replicas(root: Path, guest: Path) -> AsyncIterator[tuple[Replica, Replica, SimulatedFleet, EtcdStore]]:
    etcd = EtcdCluster.start(root / "etcd")
    procs: list[Proc] = []
    fleet: SimulatedFleet | None = None
    try:
        a = replica(root, "a", etcd, guest)
        procs.append(a.proc)
        await until(a.body, lambda b: b.get("leader") is True, 60, "replica a leads")
        b = replica(root, "b", etcd, guest)
        procs.append(b.proc)
        await until(b.body, lambda body: body.get("leader") is False, 60, "replica b follows")
        addr = f"127.0.0.1:{free_port()}"
        nodes = [simulated_node(n, addr, NodeCapacity(8, 32 * 1024, 500)) for n in NODES]
        fleet = SimulatedFleet([a.api, b.api], addr, nodes, root / "cache", INTERVAL)
        await fleet.start()
        store = await EtcdStore.open(etcd.endpoints)
        try:
            yield a, b, fleet, store
        finally:
            await store.close()
    finally:
        if fleet is not None:
            await fleet.stop()
        for proc in procs:
            proc.stop()
        etcd.stop()


async def revisions(store: EtcdStore) -> dict[str, int]:
    return {kv.key: kv.mod_revision for kv in await store.list_all(keys.NODES)}


async def test_no_heartbeating_node_goes_not_ready_across_a_leader_change(tmp_path: Path, guest_dir: Path) -> None:
    async with (
        two_replicas(tmp_path, guest_dir) as (a, b, fleet, store),
        await PlasmaClient.connect(b.api) as client,
    ):
        await until(client.list_nodes, lambda ns: len(ns) == len(NODES), 30, "every node registered")
        before = await revisions(store)
        await until(lambda: asyncio.sleep(0, fleet.deltas[NODES[0]].since_full), lambda n: n >= 6, 30,
                    "six more heartbeats")
        assert await revisions(store) == before  # heartbeats to the leader wrote no node record

        states: set[NodeState] = set()
        watching = True

        async def watch_states() -> None:
            while watching:
                with contextlib.suppress(Exception):
                    states.update(n.state for n in await client.list_nodes() if n.id != "sim-19")
                await asyncio.sleep(0.2)  # sampling the node states while the leader changes

        sampler = asyncio.create_task(watch_states())
        a.proc.kill()  # the leader dies; heartbeats fail over to b, which takes over after the lease
        await until(b.body, lambda body: body.get("leader") is True, 30, "replica b leads")
        fleet.pause("sim-19")  # one node stops: the new leader must still notice that
        await until(lambda: client.get_node("sim-19"), lambda n: n.state == NodeState.NOT_READY,
                    TIMEOUT * 4, "the silent node NOT_READY")
        watching = False
        await sampler
        assert states == {NodeState.READY}, states
        nodes = {n.id: n.state for n in await client.list_nodes()}
        assert all(nodes[n] == NodeState.READY for n in NODES[:-1]), nodes
        body = await b.body()
        assert body.get("status") == "ready" and len(body.get("agents_online", [])) == len(NODES) - 1  # type: ignore[arg-type]

