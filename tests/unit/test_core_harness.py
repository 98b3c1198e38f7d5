"""Core's lifecycle, placement, quota and report logic on the in-process harness (tests/core_harness.py).

The real Core over a temp-file SQLite store; only the node agents are fakes (they stand in for the
network: nothing here claims a VM booted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from plasmavmc.core import pending, quotas
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.loops import adopt
from plasmavmc.core.loops.restarts import RestartLoop
from plasmavmc.core.nodes import reports
from plasmavmc.core.vms import lifecycle, power, restarts
from plasmavmc.core.vms.reads import VmReads
from plasmavmc.errors import AlreadyExists, InvalidArgument, NoSuitableNode, QuotaExceeded, VmNotFound
from plasmavmc.store import keys
from plasmavmc.store.records import mutate
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    CpuSpec,
    DiskSource,
    DiskSpec,
    HypervisorType,
    MemorySpec,
    RestartPolicy,
    SecuritySpec,
    VirtualMachine,
    VmSpec,
    VmStatus,
)
from tests.core_harness import IMAGE, FakeAgent, FakeAgentPool, add_image, add_node, make_core

ORG, PROJ, NODE = "org-h", "proj-h", "node-h"
SPEC = VmSpec(cpu=CpuSpec(vcpus=2), memory=MemorySpec(size_mib=512),
              disks=(DiskSpec(id="root", source=DiskSource(image_id=IMAGE), size_gib=2),))


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    c = await make_core(tmp_path)
    await add_node(c, NODE)
    await add_image(c, "harness-kernel")
    await add_image(c, IMAGE, kernel_id="harness-kernel")
    try:
        yield c
    finally:
        await c.store.close()


def agent(core: Core) -> FakeAgent:
    assert isinstance(core.agents, FakeAgentPool)
    return core.agents.agents.setdefault(NODE, FakeAgent(NODE))


async def create(core: Core, name: str, spec: VmSpec = SPEC) -> VirtualMachine:
    req = lifecycle.CreateVm(name, ORG, PROJ, spec, HypervisorType.KVM, {}, {})
    return await lifecycle.create(core, req)


async def written(core: Core) -> tuple[int, int, int, int]:
    """(VM records, node's allocated vCPUs, project's VM count, project's vCPUs) as stored."""
    vms = await core.store.list_all(keys.VMS)
    node = (await core.nodes.get(NODE)).value
    usage = (await quotas.get(core.store, ORG, PROJ)).usage
    return len(vms), node.allocated.vcpus, usage.vms, usage.vcpus


async def test_create_start_stop_delete(core: Core) -> None:
    vm = await create(core, "web")
    assert (vm.state, vm.node_id) == (VmState.STOPPED, NODE)
    assert await written(core) == (1, 2, 1, 2)
    assert agent(core).vms == {vm.id: VmState.STOPPED}
    ref = VmRef(ORG, PROJ, vm.id)
    running = await power.start(core, ref)
    assert running.state is VmState.RUNNING and running.status.host_pid
    assert agent(core).vms[vm.id] is VmState.RUNNING
    stopped = await power.stop(core, ref, force=False, timeout_seconds=5)
    assert stopped.state is VmState.STOPPED and stopped.status.host_pid is None
    await lifecycle.delete(core, ref, force=False)
    with pytest.raises(VmNotFound):
        await core.find_vm(ref)
    assert await written(core) == (0, 0, 0, 0)
    assert agent(core).vms == {} and agent(core).calls[-1] == "DeleteVm"


async def test_a_delete_leaves_the_node_cache_current(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delete gives its claim back in the scheduler's node cache as well (the node as written, with its
    revision), so the next create on that node wins its claim's compare-and-swap at once instead of
    losing a commit and re-reading the node (on a create+start's path: the Firecracker bench's creates
    follow deletes)."""
    first = await create(core, "one")
    await lifecycle.delete(core, VmRef(ORG, PROJ, first.id), force=False)
    kv = await core.store.get(keys.node(NODE))
    cached = core.nodes.cache.get(NODE)
    assert kv is not None and cached is not None
    assert (cached[0].revision, cached[0].value.allocated.vcpus) == (kv.mod_revision, 0)
    lost: list[str] = []
    refresh = core.nodes.cache.refresh

    async def counted(node_id: str, *, groups_too: bool = False) -> None:  # called after a lost claim only
        lost.append(node_id)
        await refresh(node_id, groups_too=groups_too)

    monkeypatch.setattr(core.nodes.cache, "refresh", counted)
    second = await create(core, "two")
    assert second.node_id == NODE and lost == []
    assert await written(core) == (1, 2, 1, 2)


async def test_quota_refusal_writes_nothing(core: Core) -> None:
    await quotas.set_limits(core.store, ORG, "", ResourceLimits(max_vms=1))
    first = await create(core, "one")
    with pytest.raises(QuotaExceeded, match="max_vms"):
        await create(core, "two")
    assert await written(core) == (1, 2, 1, 2)
    assert list(agent(core).vms) == [first.id]


@pytest.mark.parametrize(("start", "expected"), [
    (True, ["commit", "agent", "commit"]),  # the VM already placed, then the last step
    (False, ["commit", "commit", "agent", "commit"]),  # record (batched per org), claim, last step
])
async def test_commits_around_the_agent_call(core: Core, monkeypatch: pytest.MonkeyPatch, start: bool,
                                             expected: list[str]) -> None:
    """Between CreateVm's arrival and the agent call: with `start` (latency first) one commit — the VM
    already placed, its name, the pending operation, the quota charge, the node claim; without, the
    record's commit (batched with the org's other creates) then the claim's."""
    seen: list[str] = []
    commit, fake = core.store.commit, agent(core)
    create_vm = fake.CreateVm

    async def counted_commit(writes: Any, **kw: Any) -> int:
        seen.append("commit")
        return await commit(writes, **kw)

    async def counted_create(request: Any, timeout: float | None = None) -> Any:
        seen.append("agent")
        return await create_vm(request, timeout)

    monkeypatch.setattr(core.store, "commit", counted_commit)
    monkeypatch.setattr(fake, "CreateVm", counted_create)
    req = lifecycle.CreateVm("counted", ORG, PROJ, SPEC, HypervisorType.KVM, {}, {}, start=start)
    vm = await lifecycle.create(core, req)
    assert seen == expected
    assert (vm.state, vm.node_id) == (VmState.RUNNING if start else VmState.STOPPED, NODE)
    assert await written(core) == (1, 2, 1, 2)
    assert await core.store.get(keys.assignment(vm.id)) is not None


@pytest.mark.parametrize("start", [True, False])
async def test_no_suitable_node_writes_nothing(core: Core, start: bool) -> None:
    req = lifecycle.CreateVm("huge", ORG, PROJ, replace(SPEC, cpu=CpuSpec(vcpus=64)), HypervisorType.KVM, {}, {},
                             start=start)
    with pytest.raises(NoSuitableNode):
        await lifecycle.create(core, req)
    assert await written(core) == (0, 0, 0, 0)
    assert await core.store.get(keys.vm_name(ORG, PROJ, "huge")) is None
    assert agent(core).calls == []


async def test_unsupported_spec_writes_nothing_and_asks_no_agent(core: Core) -> None:
    with pytest.raises(InvalidArgument) as err:
        await create(core, "tpm", replace(SPEC, security=SecuritySpec(tpm=True)))
    assert err.value.field == "spec.security.tpm"
    assert await written(core) == (0, 0, 0, 0)
    assert agent(core).calls == []


async def test_reports_move_state_through_the_table(core: Core) -> None:
    vm = await create(core, "reported")
    ref = VmRef(ORG, PROJ, vm.id)
    await power.start(core, ref)
    await reports.on_exit(core, "another-node", vm.id, ExitKind.CRASHED, VmStatus(last_error="boom"))
    assert (await core.find_vm(ref)).value.state is VmState.RUNNING  # not this node's VM: ignored
    await reports.on_exit(core, NODE, vm.id, ExitKind.CRASHED, VmStatus(last_error="boom"))
    crashed = (await core.find_vm(ref)).value
    assert (crashed.state, crashed.status.last_error) == (VmState.STOPPED, "boom")
    await reports.on_exit(core, NODE, vm.id, ExitKind.GUEST_POWEROFF, VmStatus())
    unmoved = (await core.find_vm(ref)).value  # only a RUNNING VM is moved by an exit
    assert (unmoved.state, unmoved.status.last_error) == (VmState.STOPPED, "boom")
    agent(core).vms[vm.id] = VmState.STOPPED  # what the node holds after the crash
    await power.start(core, ref)
    await reports.on_exit(core, NODE, vm.id, ExitKind.GUEST_POWEROFF, VmStatus())
    powered_off = (await core.find_vm(ref)).value
    assert (powered_off.state, powered_off.status.last_error) == (VmState.STOPPED, None)


async def test_a_restart_claimed_by_a_dead_leader_is_due_again(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restarts, "CLAIM_S", 1)
    monkeypatch.setattr(restarts, "BACKOFF_S", 0)
    vm = await create(core, "claimed", replace(SPEC, restart_policy=RestartPolicy.ALWAYS))
    ref = VmRef(ORG, PROJ, vm.id)
    await power.start(core, ref)
    await reports.on_exit(core, NODE, vm.id, ExitKind.CRASHED, VmStatus(last_error="killed"))
    agent(core).vms[vm.id] = VmState.STOPPED  # what the node holds after the crash
    found = await core.find_vm(ref)
    assert found.value.status.restart_due_at > 0
    taken = await RestartLoop(core)._take(found)  # the first leader claims it ... and dies before the start
    assert taken is not None and taken.state is VmState.STOPPED and taken.status.restarts == 1
    assert [kv.key for kv in await core.store.list_all(keys.RESTARTS)] == [keys.restart(vm.id)]  # the claim is kept

    second = RestartLoop(core)  # the next leader: the claim runs out and the restart is due again
    deadline = time.monotonic() + 30
    while (await core.find_vm(ref)).value.state is not VmState.RUNNING:
        assert time.monotonic() < deadline, (await core.find_vm(ref)).value.status
        await asyncio.sleep(min(await second.pass_once(), 0.2))  # the loop's own wait, bounded by a deadline
    restarted = (await core.find_vm(ref)).value
    assert restarted.status.restarts == 2 and restarted.status.restart_due_at == 0, restarted.status
    assert [kv.key for kv in await core.store.list_all(keys.RESTARTS)] == []  # the STARTING commit cleared the claim



async def test_an_adopters_late_last_step_never_undoes_a_newer_state(core: Core) -> None:
    """The leader adopts a create it judged abandoned while its driver was in fact finishing: by the time
    the adopter's last step lands, the VM was created and started. The adopter leaves it RUNNING."""
    vm = await create(core, "adopted")
    key = keys.vm(ORG, PROJ, vm.id)
    await mutate(core.store, VirtualMachine, key, lambda v: replace(v, state=VmState.CREATING))
    node = agent(core)
    asked = node.GetVmStatus

    async def meanwhile(request: Any, timeout: float | None = None) -> Any:
        # while the adopter asks the node, the driver's last step and a StartVm land
        node.GetVmStatus = asked  # type: ignore[method-assign]
        await mutate(core.store, VirtualMachine, key, lambda v: lifecycle.moved(v, VmState.STOPPED, "create"))
        await power.start(core, VmRef(ORG, PROJ, vm.id))
        return await asked(request, timeout)

    node.GetVmStatus = meanwhile  # type: ignore[method-assign]
    await adopt.finish_operation(core, pending.begin(pending.Op.CREATE, key, vm.id, "dead-server"))
    assert (await core.find_vm(VmRef(ORG, PROJ, vm.id))).value.state is VmState.RUNNING


@pytest.mark.parametrize("start", [True, False])
async def test_a_taken_name_is_refused_from_the_watched_index(core: Core, start: bool, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With GetVm's watched name index current, a create's name check reads no store; a name taken where
    this replica's index has not seen it yet (another replica, a moment ago) is still ALREADY_EXISTS,
    refused by the create's commit with nothing written."""
    core.vm_reads = VmReads(core.store)
    watching = asyncio.create_task(core.vm_reads.run())
    try:
        await create(core, "taken")
        assert await core.vm_reads.names.caught_up(5.0)
        get = core.store.get
        name_reads: list[str] = []

        async def counted_get(key: str) -> Any:
            if key.startswith(keys.NAMES):
                name_reads.append(key)
            return await get(key)

        monkeypatch.setattr(core.store, "get", counted_get)
        again = lifecycle.CreateVm("taken", ORG, PROJ, SPEC, HypervisorType.KVM, {}, {}, start=start)
        with pytest.raises(AlreadyExists) as err:
            await lifecycle.create(core, again)
        assert err.value.field == "name" and name_reads == []
        before = await written(core)
        watching.cancel()  # the index stops here: a name taken now is not in it
        other = await SqliteStore.open(tmp_path / "state.db")  # another replica's writes, on the same store
        try:
            await other.put(keys.vm_name(ORG, PROJ, "elsewhere"), b"00000000-0000-4000-8000-00000000000e", 0)
        finally:
            await other.close()
        late = lifecycle.CreateVm("elsewhere", ORG, PROJ, SPEC, HypervisorType.KVM, {}, {}, start=start)
        with pytest.raises(AlreadyExists) as err:
            await lifecycle.create(core, late)
        assert err.value.field == "name"
        assert await written(core) == before
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
