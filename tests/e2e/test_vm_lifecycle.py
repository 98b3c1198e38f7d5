"""End to end over gRPC with the real server, agent and QEMU: the walking skeleton's main path.

create -> start (watch sees STARTING then RUNNING) -> console line -> reboot (line again) -> stop
(STOPPED, QEMU gone) -> delete (runtime dir and record gone); and a QEMU killed behind our back.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import VmNotFound
from plasmavmc.types.events import VmEvent
from plasmavmc.types.states import VmState
from tests.conftest import Cluster, needs_qemu
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec

pytestmark = [needs_qemu]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


async def collect(client: PlasmaClient, vm_id: str, into: list[VmEvent], subscribed: asyncio.Event) -> None:
    async for event in client.watch_vm(ORG, PROJECT, vm_id, send_initial=True):
        into.append(event)
        subscribed.set()


async def test_create_start_console_reboot_stop_delete(client: PlasmaClient, cluster: Cluster) -> None:
    vm = await client.create_vm("web-1", ORG, PROJECT, tiny_spec())
    assert vm.state == VmState.STOPPED
    assert vm.node_id == cluster.node_id
    events: list[VmEvent] = []
    subscribed = asyncio.Event()
    watcher = asyncio.create_task(collect(client, vm.id, events, subscribed))
    await asyncio.wait_for(subscribed.wait(), 10)
    running = await client.start_vm(ORG, PROJECT, "web-1")
    assert running.state == VmState.RUNNING
    assert running.status.host_pid and pid_alive(running.status.host_pid)
    assert running.status.started_at
    assert running.status.accelerator in ("tcg", "kvm")
    await console_until(client, vm.id, rf"PLASMAVMC-READY name=web-1 id={vm.id}")
    states = [e.state for e in events]
    assert VmState.STARTING in states and VmState.RUNNING in states
    assert states.index(VmState.STARTING) < states.index(VmState.RUNNING)

    await client.reboot_vm(ORG, PROJECT, vm.id)
    await console_until(client, vm.id, rf"PLASMAVMC-READY name=web-1 id={vm.id}", count=2)

    pid = (await client.get_vm(ORG, PROJECT, vm.id)).status.host_pid
    assert pid is not None
    stopped = await client.stop_vm(ORG, PROJECT, vm.id, timeout_seconds=30)
    assert stopped.state == VmState.STOPPED
    assert not pid_alive(pid)

    runtime = cluster.root / "run" / "kvm" / vm.id
    assert runtime.exists()
    await client.delete_vm(ORG, PROJECT, vm.id)
    assert not runtime.exists()
    with pytest.raises(VmNotFound):
        await client.get_vm(ORG, PROJECT, vm.id)
    watcher.cancel()


async def test_qemu_killed_behind_our_back_is_stopped_with_the_reason(client: PlasmaClient, cluster: Cluster) -> None:
    vm = await client.create_vm("crash-1", ORG, PROJECT, tiny_spec())
    running = await client.start_vm(ORG, PROJECT, vm.id)
    assert running.status.host_pid is not None
    os.kill(running.status.host_pid, signal.SIGKILL)
    failed = await client.wait_for_state(ORG, PROJECT, vm.id, {VmState.ERROR, VmState.STOPPED}, timeout=10)
    assert failed.state == VmState.STOPPED  # a power-state sync, as a cloud does: intact, startable
    assert failed.status.last_error and "exited unexpectedly" in failed.status.last_error, failed.status
    assert failed.status.host_pid is None
    await client.delete_vm(ORG, PROJECT, vm.id)
