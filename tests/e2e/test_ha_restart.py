"""The single-node default (SQLite, no etcd): a server killed -9 in the middle of a create leaves a
pending record; the restarted server (a new member, always the leader) adopts it and finishes the
create exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types import codec
from plasmavmc.types.image import Image, ImageStatus
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


async def test_restarted_server_removes_an_upload_its_predecessor_was_receiving(single: Cluster) -> None:
    """No image stays UPLOADING forever: the dead server's ingest is adopted and abandoned, and the org's
    image count comes back."""
    store = await SqliteStore.open(single.root / "state.db")
    sent = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"\0" * 65536
        sent.set()
        await asyncio.Event().wait()  # never finishes: the server dies first
        yield b""

    try:
        async with await PlasmaClient.connect(single.api) as client:
            upload = asyncio.ensure_future(client.upload_image(ORG, "cut-short", stalled()))
            await asyncio.wait_for(sent.wait(), DEADLINE)
            deadline = time.monotonic() + DEADLINE
            while not await store.list_all(keys.PENDING) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # polling what another process writes, with a deadline
            images = [codec.loads(Image, kv.value) for kv in await store.list_all(keys.IMAGES + ORG + "/")]
            assert [(i.name, i.status) for i in images] == [("cut-short", ImageStatus.UPLOADING)]
            assert (await client.get_quota(ORG)).usage.images == 1
            single.server.kill(signal.SIGKILL)
            with pytest.raises(PlasmaError):
                await asyncio.wait_for(upload, DEADLINE)
        single.server.start()
        single.wait_ready()
        deadline = time.monotonic() + DEADLINE
        while (await store.list_all(keys.PENDING) or await store.list_all(keys.IMAGES + ORG + "/")) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.1)  # the new leader adopts the ingest and removes the image
        assert await store.list_all(keys.IMAGES + ORG + "/") == []
        assert await store.list_all(keys.PENDING) == []
        async with await PlasmaClient.connect(single.api) as client:
            assert (await client.get_quota(ORG)).usage.images == 0
    finally:
        await store.close()
