"""Chaos on a real 3-member etcd under concurrent creates (one real server, SIMULATED agents).

16 clients create VMs (unique names) without pause while the test, three times over, kills -9 the etcd
member the server talks to (its `/ready` says which) and then the raft leader, bringing each back once
the creates made progress without it. Afterwards, once the control plane settled:

- every acknowledged create exists exactly once, as answered (same id and name), and is STOPPED;
- no VM stays PENDING or CREATING, and no pending operation is left;
- every answer was true: no create answered ALREADY_EXISTS (every name is new), CONFLICT,
  INVALID_STATE or INTERNAL; a create that answered an error (UNAVAILABLE or STORE_ERROR, which do
  not say whether the VM was made) left either no VM or one that is findable by its name and finished
  (STOPPED, on a node) — never a half-made one;
- the counted usage (quota, node allocations) equals the VMs that exist.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.types.node import NodeCapacity
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine
from tests.e2e.simulated import SIM, NodeSpec, SimCluster, sim_cluster, sim_spec
from tests.etcd import EtcdCluster, needs_etcd

pytestmark = needs_etcd

ORG, PROJECT = "org-x", "proj-x"
CLIENTS = 16
CYCLES = 3
PROGRESS = 5  # creates acknowledged while a member is down, before it comes back
DEADLINE = 60.0
AMBIGUOUS = {"UNAVAILABLE", "STORE_ERROR", "DEADLINE_EXCEEDED"}  # say nothing of whether it was made


class Ledger:
    """What the clients were told, by VM name."""

    def __init__(self) -> None:
        self.acked: dict[str, str] = {}  # name -> id
        self.failed: dict[str, str] = {}  # name -> error code
        self.progress = asyncio.Condition()

    async def ack(self, name: str, vm_id: str) -> None:
        async with self.progress:
            self.acked[name] = vm_id
            self.progress.notify_all()

    async def wait_for(self, count: int, what: str) -> None:
        try:
            async with self.progress:
                await asyncio.wait_for(self.progress.wait_for(lambda: len(self.acked) >= count), DEADLINE)
        except TimeoutError:
            raise AssertionError(f"{what}: no {count} acknowledged creates in {DEADLINE}s") from None


async def creator(client: PlasmaClient, worker: int, ledger: Ledger, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        name = f"w{worker:02d}-{i:05d}"
        i += 1
        try:
            vm = await client.create_vm(name, ORG, PROJECT, sim_spec(), SIM)
        except PlasmaError as err:
            ledger.failed[name] = err.code.value
            continue
        await ledger.ack(name, vm.id)


def ready_body(http: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"{http}/ready", timeout=2) as resp:
            body: dict[str, object] = json.loads(resp.read())
    except urllib.error.HTTPError as err:  # 503 still says which member it talks to
        body = json.loads(err.read())
    return body


async def member_in_use(etcd: EtcdCluster, cluster: SimCluster) -> int:
    """The index of the etcd member the server talks to now."""
    ports = {f"127.0.0.1:{m.client_port}": i for i, m in enumerate(etcd.members)}
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            endpoint = (await asyncio.to_thread(ready_body, cluster.http)).get("store_endpoint")
        except OSError:
            endpoint = None
        if isinstance(endpoint, str) and endpoint in ports and etcd.members[ports[endpoint]].running():
            return ports[endpoint]
        await asyncio.sleep(0.1)  # polling another process's state, with a deadline
    raise AssertionError(f"server names no live etcd member\n{cluster.logs()}")


async def raft_leader(etcd: EtcdCluster) -> int:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if (leader := await asyncio.to_thread(etcd.leader_index)) is not None:
            return leader
        await asyncio.sleep(0.1)  # polling etcd, with a deadline
    raise AssertionError("etcd elected no leader")


async def kill_while_creating(etcd: EtcdCluster, index: int, ledger: Ledger) -> None:
    """kill -9 member `index`, let the creates progress without it, then bring it back."""
    etcd.kill(index)
    await ledger.wait_for(len(ledger.acked) + PROGRESS, f"progress without etcd member {index}")
    etcd.restart(index)
    await asyncio.to_thread(etcd.wait_healthy, DEADLINE)


async def all_vms(client: PlasmaClient) -> list[VirtualMachine]:
    out: list[VirtualMachine] = []
    token = ""
    while True:
        page, token = await client.list_vms(ORG, PROJECT, page_size=1000, page_token=token)
        out += page
        if not token:
            return out


async def settled(client: PlasmaClient, store: EtcdStore, cluster: SimCluster) -> list[VirtualMachine]:
    """The VMs once none is PENDING/CREATING and no operation is pending (with a deadline)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        vms = await all_vms(client)
        busy = [vm for vm in vms if vm.state in (VmState.PENDING, VmState.CREATING)]
        if not busy and not await store.list_all(keys.PENDING):
            return vms
        await asyncio.sleep(0.2)  # polling the control plane finishing operations, with a deadline
    stuck = [(vm.name, vm.state.value, vm.status.last_error) for vm in busy]
    raise AssertionError(f"not settled in {DEADLINE}s: {stuck[:10]}\n{cluster.logs()}")


async def test_creates_stay_truthful_while_etcd_members_and_leaders_die(tmp_path: Path, guest_dir: Path) -> None:
    etcd = EtcdCluster.start(tmp_path / "etcd", members=3)
    endpoints = ", ".join(f'"{url}"' for url in etcd.endpoints)
    store_toml = f'[store]\nbackend = "etcd"\nendpoints = [{endpoints}]\nlease_ttl_seconds = 3\n'
    specs: list[NodeSpec] = [(f"sim-{i}", NodeCapacity(60_000, 1 << 30, 10_000_000), {}) for i in range(2)]
    store = None
    try:
        async with sim_cluster(tmp_path, guest_dir, specs, store_toml=store_toml) as cluster:
            store = await EtcdStore.open(etcd.endpoints)
            ledger, stop = Ledger(), asyncio.Event()
            workers = [asyncio.create_task(creator(cluster.client, w, ledger, stop)) for w in range(CLIENTS)]
            kills = 0
            try:
                await ledger.wait_for(PROGRESS, "first creates")
                for _ in range(CYCLES):
                    await kill_while_creating(etcd, await member_in_use(etcd, cluster), ledger)
                    await kill_while_creating(etcd, await raft_leader(etcd), ledger)
                    kills += 2
            finally:
                stop.set()
                await asyncio.gather(*workers)
            vms = await settled(cluster.client, store, cluster)
            check_truthful(ledger, vms, cluster)
            assert kills == 2 * CYCLES
            usage = (await cluster.client.get_quota(ORG, PROJECT)).usage
            assert usage.vms == len(vms), (usage, len(vms))
            allocated = sum(n.allocated.vcpus for n in await cluster.client.list_nodes())
            assert allocated == len(vms)
    finally:
        if store is not None:
            await store.close()
        etcd.stop()


def check_truthful(ledger: Ledger, vms: list[VirtualMachine], cluster: SimCluster) -> None:
    by_name = {vm.name: vm for vm in vms}
    assert len(by_name) == len(vms), Counter(vm.name for vm in vms).most_common(3)
    assert set(by_name) <= set(ledger.acked) | set(ledger.failed), "a VM nobody asked for"
    for name, vm_id in ledger.acked.items():  # acknowledged: exists exactly once, as answered
        assert name in by_name and by_name[name].id == vm_id, (name, cluster.logs())
    codes = Counter(ledger.failed.values())
    assert set(codes) <= AMBIGUOUS, (codes, cluster.logs())
    for vm in vms:  # acknowledged or not: finished, never half-made
        assert vm.state == VmState.STOPPED and vm.node_id, (vm.name, vm.state, vm.status.last_error)
    print(json.dumps({"acked": len(ledger.acked), "failed": dict(codes), "vms": len(vms),
                      "failed_but_made": len(set(ledger.failed) & set(by_name))}))
