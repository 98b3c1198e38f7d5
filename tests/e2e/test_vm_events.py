"""VM events end to end on a real server, agent and QEMU: a project-wide `WatchVm` client whose
connection is dropped mid-stream and resumed from the last event it saw receives every event of a VM's
life (create, start, snapshot, reboot, stop, delete) exactly once, with no heartbeat echoes; the kept
history (`vm events`) says the same; the CLI prints it."""

from __future__ import annotations

import asyncio
import sys

from plasmavmc.client import PlasmaClient
from plasmavmc.types.events import VmEvent, VmEventType
from plasmavmc.types.states import VmState
from tests.conftest import Cluster, needs_qemu
from tests.e2e.helpers import ORG, PROJECT, tiny_spec

pytestmark = needs_qemu
DEADLINE = 120.0
LIFE = ["Accepted", "Scheduled", "Created", "Starting", "Started", "GuestReady", "SnapshotTaken", "Rebooted",
        "Stopping", "Stopped", "Deleting", "Deleted"]


async def _collect(api: str, sink: list[VmEvent], after: VmEvent | None, seen: set[str]) -> None:
    """Follow the project's events into `sink` on a connection of its own (cancel = the client dies)."""
    async with await PlasmaClient.connect(api) as watcher:
        async for event in watcher.vm_events(ORG, PROJECT, "", after=after, seen=seen, follow=True):
            sink.append(event)


async def _until(sink: list[VmEvent], vm_id: str, reason: str, kind: VmEventType | None = None) -> None:
    """Wait for an event of the VM with `reason` (or of type `kind`, when given)."""
    async with asyncio.timeout(DEADLINE):
        while not any(e.vm_id == vm_id and (e.type is kind if kind else e.reason == reason) for e in sink):
            await asyncio.sleep(0.05)


def _resume_point(sink: list[VmEvent]) -> tuple[VmEvent | None, set[str]]:
    if not sink:
        return None, set()
    last = sink[-1]
    return last, {e.id for e in sink if e.revision == last.revision}


def _story(events: list[VmEvent], vm_id: str) -> str:
    return "\n".join(f"r{e.revision} {e.type.value} {e.reason} {e.message}" for e in events if e.vm_id == vm_id)


async def test_watch_resumed_after_a_kill_sees_every_event_once(cluster: Cluster, client: PlasmaClient) -> None:
    received: list[VmEvent] = []
    first = asyncio.create_task(_collect(cluster.api, received, None, set()))
    vm = await client.create_vm("ev-1", ORG, PROJECT, tiny_spec())
    await client.start_vm(ORG, PROJECT, vm.id)
    await _until(received, vm.id, "GuestReady")
    await client.snapshot_vm(ORG, PROJECT, vm.id, "s1")
    await _until(received, vm.id, "SnapshotTaken")
    first.cancel()  # the client dies mid-stream; what follows happens while nobody watches
    await asyncio.gather(first, return_exceptions=True)
    after, seen = _resume_point(received)

    try:
        await client.reboot_vm(ORG, PROJECT, vm.id)
        await client.stop_vm(ORG, PROJECT, vm.id)
    except Exception as exc:  # say what the VM went through before it refused
        raise AssertionError(f"{exc}; the VM's events so far:\n{_story(received, vm.id)}") from exc
    resumed = asyncio.create_task(_collect(cluster.api, received, after, seen))
    try:
        await client.delete_vm(ORG, PROJECT, vm.id)
        await _until(received, vm.id, "Deleted")
    finally:
        resumed.cancel()
        await asyncio.gather(resumed, return_exceptions=True)

    mine = [e for e in received if e.vm_id == vm.id]
    story = _story(mine, vm.id)
    assert len({e.id for e in mine}) == len(mine), "an event was repeated:\n" + story
    revisions = [e.revision for e in mine]
    assert revisions == sorted(revisions)
    reasons = iter(e.reason for e in mine)  # the life, in order (a loaded machine may add e.g. a Failed)
    assert all(step in reasons for step in LIFE), story
    assert not any(e.type is VmEventType.UPDATED for e in mine), "a heartbeat echoed:\n" + story
    started = next(e for e in mine if e.reason == "Started")
    assert started.type is VmEventType.STATE_CHANGED and started.state is VmState.RUNNING
    rebooted = next(e for e in mine if e.reason == "Rebooted")
    assert rebooted.type is VmEventType.OPERATION and rebooted.actor == "admin"
    assert mine[0].actor == "admin"  # the bootstrap admin the tests call as

    kept = [e async for e in client.vm_events(ORG, PROJECT, vm.id)]  # by id: the VM is gone
    assert [e.id for e in kept] == [e.id for e in mine], "received != stored:\n" + story


async def test_cli_events_and_one_vm_watch(cluster: Cluster, client: PlasmaClient) -> None:
    vm = await client.create_vm("ev-2", ORG, PROJECT, tiny_spec())
    watched: list[VmEvent] = []

    async def follow() -> None:
        async for event in client.watch_vm(ORG, PROJECT, vm.id, send_initial=True):
            watched.append(event)

    task = asyncio.create_task(follow())
    try:
        # the watch has its initial state before the update: an update made before it would be in it
        await _until(watched, vm.id, "", VmEventType.INITIAL)
        await client.update_vm(ORG, PROJECT, vm.id, labels={"tier": "web"})
        await _until(watched, vm.id, "Updated")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert watched[0].type is VmEventType.INITIAL and watched[0].vm is not None
    assert [e.reason for e in watched[1:]] == ["Updated"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.cli", "--addr", cluster.api, "--org", ORG, "--project", PROJECT,
        "vm", "events", "ev-2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert [line.split()[3] for line in lines] == ["Accepted", "Scheduled", "Created", "Updated"], lines
    assert all(f"vm {vm.id}" in line and "by admin" in line for line in lines)
    await client.delete_vm(ORG, PROJECT, vm.id)
