"""The single-node default (SQLite, no etcd): a server killed -9 in the middle of a create leaves a
pending record; the restarted server (a new member, always the leader) adopts it and finishes the
create exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types import codec
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine
from tests.conftest import Cluster, kill_leftover_qemu, needs_qemu, start_cluster
from tests.e2e.helpers import ORG, PROJECT, tiny_spec

pytestmark = [needs_qemu]
DEADLINE = 60.0


@pytest.fixture
def single(tmp_path: Path, guest_dir: Path) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path, guest_dir)
    try:
        yield cluster
    finally:
        assert cluster.agent.popen is not None
        with contextlib.suppress(ProcessLookupError):
            cluster.agent.popen.send_signal(signal.SIGCONT)
        cluster.agent.stop()
        cluster.server.stop()
        kill_leftover_qemu(tmp_path)


async def vms(store: SqliteStore) -> list[VirtualMachine]:
    return [codec.loads(VirtualMachine, kv.value) for kv in await store.list_all(keys.vms_in(ORG, PROJECT))]


async def until_state(store: SqliteStore, name: str, state: VmState, cluster: Cluster) -> VirtualMachine:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = [vm for vm in await vms(store) if vm.name == name and vm.state == state]
        if found:
            return found[0]
        await asyncio.sleep(0.1)  # polling state another process writes, with a deadline
    seen = [(vm.name, vm.state.value, vm.status.last_error) for vm in await vms(store)]
    raise AssertionError(f"{name} not {state.value} in {DEADLINE}s: {seen}\n{cluster.logs()}")


async def test_restarted_server_finishes_an_interrupted_create(single: Cluster) -> None:
    assert single.agent.popen is not None
    store = await SqliteStore.open(single.root / "state.db")
    try:
        async with await PlasmaClient.connect(single.api) as client:
            single.agent.popen.send_signal(signal.SIGSTOP)  # the server's call to the agent hangs
            try:
                creating = asyncio.ensure_future(client.create_vm("solo-1", ORG, PROJECT, tiny_spec()))
                await until_state(store, "solo-1", VmState.CREATING, single)
                assert len(await store.list_all(keys.PENDING)) == 1
                single.server.kill(signal.SIGKILL)
            finally:
                single.agent.popen.send_signal(signal.SIGCONT)
            with pytest.raises(PlasmaError):
                await asyncio.wait_for(creating, DEADLINE)
        single.server.start()  # the same config and database; a new server id
        single.wait_ready()
        done = await until_state(store, "solo-1", VmState.STOPPED, single)
        assert [vm.id for vm in await vms(store)] == [done.id]
        deadline = time.monotonic() + DEADLINE
        while await store.list_all(keys.PENDING) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # the adopter deletes the record just after the VM's last write
        assert await store.list_all(keys.PENDING) == []
    finally:
        await store.close()
