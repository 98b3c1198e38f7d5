"""Two control-plane replicas on one real etcd, one real agent, a real QEMU guest: kill -9 the leader in
the middle of a create and again in the middle of a start; the VM ends RUNNING exactly once.

The interruptions are made deterministic by freezing the agent (SIGSTOP) so the leader's call to it
hangs: the test waits until the store shows the VM in CREATING (then STARTING), kills the replica that
is driving the operation, and thaws the agent. The surviving replica must take over within the lease
TTL, adopt the dead replica's operation from `plasmavmc/scheduler/pending/...` and finish it — no
second VM, no second QEMU process, no pending record left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.types import codec
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine
from tests.conftest import Proc, kill_leftover_qemu, needs_qemu, short_run_dir
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec
from tests.etcd import EtcdCluster, needs_etcd
from tests.ports import free_port

pytestmark = [needs_qemu, needs_etcd]

LEASE_TTL = 3  # seconds; the default is 5
DEADLINE = 60.0
T = TypeVar("T")


@dataclass
class Replica:
    name: str
    api: str
    http: str
    proc: Proc

    def ready(self) -> dict[str, object] | None:
        """The /ready body when the replica answers 200, else None."""
        try:
            with urllib.request.urlopen(f"{self.http}/ready", timeout=2) as resp:
                body: dict[str, object] = json.loads(resp.read())
                return body if resp.status == 200 else None
        except OSError:
            return None


@dataclass
class HaCluster:
    root: Path
    guest: Path
    etcd: EtcdCluster
    agent: Proc | None = None
    replicas: dict[str, Replica] = field(default_factory=dict)
    ports: dict[str, tuple[int, int]] = field(default_factory=dict)

    def start_replica(self, name: str) -> Replica:
        api, http = self.ports.setdefault(name, (free_port(), free_port()))
        cfg = self.root / f"{name}.toml"
        endpoints = ", ".join(f'"{url}"' for url in self.etcd.endpoints)
        cfg.write_text(
            f'[server]\naddr = "127.0.0.1:{api}"\nmetrics_addr = "127.0.0.1:{http}"\n'
            f'console_addr = "127.0.0.1:{free_port()}"\n'
            f'[store]\nbackend = "etcd"\nendpoints = [{endpoints}]\nlease_ttl_seconds = {LEASE_TTL}\n'
            f'[image_store]\nbackend = "local"\npath = "{self.root}/images"\nseed_dirs = ["{self.guest}"]\n'
            f'[agents]\nheartbeat_timeout_seconds = 20\n[logging]\nlevel = "info"\nformat = "text"\n'
        )
        proc = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(cfg)], self.root / f"{name}.log")
        proc.start()
        replica = Replica(name, f"127.0.0.1:{api}", f"http://127.0.0.1:{http}", proc)
        self.replicas[name] = replica
        return replica

    def start_agent(self) -> None:
        planes = ", ".join(f'"http://{r.api}"' for r in self.replicas.values())
        cfg = self.root / "agent.toml"
        cfg.write_text(
            f'[agent]\nnode_id = "node-1"\ncontrol_planes = [{planes}]\n'
            f'addr = "127.0.0.1:{free_port()}"\nheartbeat_interval_seconds = 1\n'
            f'metrics_addr = "127.0.0.1:{free_port()}"\n'
            f'[hypervisors]\nenabled = ["kvm"]\n[hypervisors.kvm]\nruntime_dir = "{short_run_dir(self.root)}/kvm"\n'
            f'[storage]\nimage_cache_dir = "{self.root}/cache"\nruntime_dir = "{self.root}/vms"\n'
            f'[logging]\nlevel = "info"\nformat = "text"\n'
        )
        self.agent = Proc([sys.executable, "-m", "plasmavmc.agent.main", "-c", str(cfg)], self.root / "agent.log")
        self.agent.start()

    def signal_agent(self, sig: int) -> None:
        assert self.agent is not None and self.agent.popen is not None
        self.agent.popen.send_signal(sig)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")) if p.exists()
        )

    def stop(self) -> None:
        if self.agent is not None:
            with contextlib.suppress(ProcessLookupError):
                self.signal_agent(signal.SIGCONT)
            self.agent.stop()
        for replica in self.replicas.values():
            replica.proc.stop()
        kill_leftover_qemu(self.root)
        self.etcd.stop()


def until(check: Callable[[], T | None], what: str, cluster: HaCluster, timeout: float = DEADLINE) -> T:
    """Poll an external process's state with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None and found is not False:
            return found
        time.sleep(0.1)  # polling external processes, with a deadline
    raise AssertionError(f"{what} not within {timeout}s\n{cluster.logs()}")


async def until_async(check: Callable[[], Awaitable[T | None]], what: str, cluster: HaCluster, store: EtcdStore) -> T:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with contextlib.suppress(PlasmaError):
            found = await check()
            if found is not None:
                return found
        await asyncio.sleep(0.1)  # polling the store for a state another process writes, with a deadline
    records = [codec.loads(VirtualMachine, kv.value) for kv in await store.list_all(keys.vms_in(ORG, PROJECT))]
    seen = [(vm.name, vm.state.value, vm.status.last_error) for vm in records]
    raise AssertionError(f"{what} not within {DEADLINE}s; VMs: {seen}\n{cluster.logs()}")


@pytest.fixture
def ha(guest_dir: Path) -> Iterator[HaCluster]:
    # a short root: QEMU's QMP socket path under it must stay below the 108-byte unix socket limit
    root = Path(tempfile.mkdtemp(prefix="plasmavmc-ha-"))
    cluster = HaCluster(root, guest_dir, EtcdCluster.start(root / "etcd"))
    try:
        a = cluster.start_replica("a")
        until(lambda: _leader_of(a), "a leads", cluster)
        cluster.start_replica("b")
        cluster.start_agent()
        for replica in cluster.replicas.values():
            until(lambda r=replica: r.ready(), f"{replica.name} ready", cluster)  # type: ignore[misc]
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _leader_of(replica: Replica) -> str | None:
    """`"self"` when this replica reports itself leader (via /ready, answered even when not ready)."""
    try:
        with urllib.request.urlopen(f"{replica.http}/ready", timeout=2) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        body = json.loads(err.read())
    except OSError:
        return None
    return "self" if body.get("leader") else None


async def vm_in(store: EtcdStore, name: str, state: VmState) -> VirtualMachine | None:
    for kv in await store.list_all(keys.vms_in(ORG, PROJECT)):
        vm = codec.loads(VirtualMachine, kv.value)
        if vm.name == name and vm.state == state:
            return vm
    return None


def qemu_processes(vm_id: str) -> int:
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().split(b"\0")
            if argv and b"qemu-system" in argv[0] and any(vm_id.encode() in a for a in argv):
                count += 1
    return count


async def interrupted(
    cluster: HaCluster, store: EtcdStore, victim: str, call: Awaitable[object], name: str, state: VmState
) -> None:
    """Run `call` on the victim with the agent frozen; once the VM is in `state`, kill -9 the victim."""
    cluster.signal_agent(signal.SIGSTOP)
    task = asyncio.ensure_future(call)
    try:
        await until_async(lambda: vm_in(store, name, state), f"{name} {state.value}", cluster, store)
        cluster.replicas[victim].proc.kill(signal.SIGKILL)
    finally:
        cluster.signal_agent(signal.SIGCONT)
    with pytest.raises(PlasmaError):  # the caller's connection died with the replica
        await asyncio.wait_for(task, DEADLINE)


async def test_leader_killed_during_create_and_start(ha: HaCluster) -> None:
    store = await EtcdStore.open(ha.etcd.endpoints)
    try:
        # 1. kill the leader (a) while it is creating the VM; b takes over and finishes the create
        async with await PlasmaClient.connect(ha.replicas["a"].api) as on_a:
            await interrupted(
                ha, store, "a", on_a.create_vm("ha-1", ORG, PROJECT, tiny_spec()), "ha-1", VmState.CREATING
            )
        stopped = await until_async(lambda: vm_in(store, "ha-1", VmState.STOPPED), "ha-1 created by b", ha, store)
        assert _leader_of(ha.replicas["b"]) == "self"

        # 2. a comes back (a new member, a follower); kill the leader (b) while it is starting the VM
        ha.start_replica("a")
        until(lambda: ha.replicas["a"].ready(), "a ready again", ha)
        async with await PlasmaClient.connect(ha.replicas["b"].api) as on_b:
            await interrupted(ha, store, "b", on_b.start_vm(ORG, PROJECT, "ha-1"), "ha-1", VmState.STARTING)
        running = await until_async(lambda: vm_in(store, "ha-1", VmState.RUNNING), "ha-1 started by a", ha, store)
        assert _leader_of(ha.replicas["a"]) == "self"

        # exactly once: one VM of that name, the same id throughout, one QEMU, nothing left pending
        assert running.id == stopped.id
        async with await PlasmaClient.connect(ha.replicas["a"].api) as on_a:
            vms, _ = await on_a.list_vms(ORG, PROJECT)
            assert [v.id for v in vms if v.name == "ha-1"] == [running.id]
            vm = await on_a.get_vm(ORG, PROJECT, "ha-1")
            assert vm.state == VmState.RUNNING and vm.status.host_pid
            await console_until(on_a, vm.id, rf"PLASMAVMC-READY name=ha-1 id={vm.id}")
        assert qemu_processes(running.id) == 1
        assert await store.list_all(keys.PENDING) == []
    finally:
        await store.close()
