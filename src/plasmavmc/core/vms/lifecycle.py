"""VM lifecycle on the control plane: create (validate, claim name, place, provision), read, update,
delete. Power operations are in `power.py`.

Create is PENDING -> CREATING (placed: node claim + assignment in one commit) -> STOPPED (the agent made
the disks): the record's commit (with its name, pending operation and quota charge, batched with the
org's other creates) then the claim's. With `start` (a spec extension) the agent also starts it and the
last write records RUNNING; such a create is latency-bound, so ONE commit writes the VM already placed,
CREATING on its node (the claim's writes with the create's own: `placement.claim` with `_creating`),
and the agent is called next. Input is validated completely before the first write, so bad input
changes nothing; a VM that no node can take is not left behind (removed again, or never written with
`start`) and the caller gets NO_SUITABLE_NODE with the reasons. With `source_snapshot` it is a clone
(`clones.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from plasmavmc import validation
from plasmavmc.core import pending, quotas
from plasmavmc.core.agents import AgentClient
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.networks import nics, refresh
from plasmavmc.core.vms import boot, clones, placement, restarts
from plasmavmc.core.vms import events as vm_events
from plasmavmc.core.vms.ahead import Ahead, goes_ahead
from plasmavmc.errors import AlreadyExists, Conflict, InvalidArgument, InvalidState, NodeNotFound, PlasmaError
from plasmavmc.hypervisor.common import boot_disk
from plasmavmc.hypervisor.registry import check_spec_for, spec_defaults_for
from plasmavmc.hypervisor.spec_check import BootImage
from plasmavmc.observe.metrics import OPERATIONS, SCHEDULER_LATENCY
from plasmavmc.observe.steps import Steps
from plasmavmc.store import keys
from plasmavmc.store.base import Write
from plasmavmc.store.records import Versioned, mutate, read, replace, retry_on_conflict
from plasmavmc.types import codec
from plasmavmc.types.image import Image, ImageFormat, ImageStatus
from plasmavmc.types.network import PortRequest
from plasmavmc.types.node import Node
from plasmavmc.types.states import VmState, check_transition, transition
from plasmavmc.types.vm import CloneSource, HypervisorType, RestartPolicy, VirtualMachine, VmSpec, VmStatus

log = logging.getLogger(__name__)
CREATE_STARTED_STEPS = "server steps"  # a create+start's log line, one per VM (`Steps`; the bench reads it)
T = TypeVar("T")
BOOTABLE_FORMATS = (ImageFormat.RAW, ImageFormat.QCOW2)  # what a qcow2 overlay can sit on


@dataclass(frozen=True)
class CreateVm:
    name: str
    org_id: str
    project_id: str
    spec: VmSpec
    hypervisor: HypervisorType
    labels: dict[str, str]
    metadata: dict[str, str]
    created_by: str = ""
    source_snapshot: CloneSource | None = None  # a clone (core/vms/clones.py)
    spec_given: bool = True  # whether the request carried a spec (a clone's must not)
    hypervisor_given: bool = True  # whether the request named the hypervisor
    start: bool = False  # start as part of the create: one round trip, one commit fewer (`provision`)
    node_id: str | None = None  # pinned to this node (a clone, where its source snapshot is)
    # with `start`: the create+start and the VM's console in one agent call (RunVm, `run.py`)
    console: ConsoleSink | None = None


class ConsoleSink(Protocol):
    """Where a RunVm's create puts the VM's console, from the node's first output on (`run.py`: a
    `relay.Relay`)."""

    async def put(self, data: bytes) -> None:
        """Output the node sent before the VM's status (the guest often writes before the node answers)."""

    def follow(self, source: AsyncGenerator[bytes]) -> None:
        """The rest of the output, once the node's status came (before the create's last commit): the
        sink's own to read and close."""


async def images_for(core: Core, org_id: str, spec: VmSpec) -> list[Image]:
    """Every image the VM needs (disks, and the kernel/ramdisk they name), checked usable."""
    found: dict[str, Image] = {}
    for i, disk in enumerate(spec.disks):
        field = f"spec.disks[{i}].source.image_id"
        image = await core.catalog.get(org_id, disk.source.image_id or "", field=field)
        if image.status != ImageStatus.AVAILABLE:
            raise InvalidArgument(field, f"image {image.id} is {image.status.value}, not available")
        if image.format not in BOOTABLE_FORMATS:
            raise InvalidArgument(
                field, f"image {image.id} is {image.format.value}: convert it to qcow2 or raw (ConvertImage) to use it"
            )
        if image.min_disk_gib > disk.size_gib:
            raise InvalidArgument(f"spec.disks[{i}].size_gib", f"image {image.id} needs {image.min_disk_gib} GiB")
        if image.min_memory_mib > spec.memory.size_mib:
            raise InvalidArgument("spec.memory.size_mib", f"image {image.id} needs {image.min_memory_mib} MiB")
        found[image.id] = image
        for meta in ("kernel_id", "ramdisk_id"):
            if ref := image.metadata.get(meta):
                found[ref] = await core.catalog.get(org_id, ref, field=f"{field} ({meta})")
    return list(found.values())


def boot_image(spec: VmSpec, images: list[Image]) -> BootImage | None:
    """What the backends' spec checks need to know of the boot disk's image."""
    disk = boot_disk(spec)
    image = next((i for i in images if disk is not None and i.id == disk.source.image_id), None)
    return None if image is None else BootImage(image.id, has_kernel=bool(image.metadata.get("kernel_id")))


def _validate(req: CreateVm) -> None:
    validation.name(req.name, "name")
    validation.name(req.org_id, "org_id")
    validation.name(req.project_id, "project_id")
    validation.vm_spec(req.spec)
    check_spec_for(req.hypervisor, req.spec)  # the spec alone, before the images are looked up
    validation.labels(req.labels, "labels")
    validation.labels(req.metadata, "metadata")


async def create(core: Core, req: CreateVm) -> VirtualMachine:
    accepted = boot.now()
    took = Steps()  # a create+start logs where it spent its time (`CREATE_STARTED_STEPS`)
    checking: asyncio.Task[None] | None = None  # a clone's snapshot check, overlapping the reads below
    if req.source_snapshot is not None:
        req, checking = await clones.resolve(core, req)
    try:
        vm, images = await _new_vm(core, req, accepted)
        if checking is not None:
            await checking
    except BaseException:
        await clones.abandon(checking)
        raise
    key = keys.vm(vm.org_id, vm.project_id, vm.id)
    vm = await nics.allocate(core.store, vm)
    # the pending record (pending.py) lets the leader finish this create if this server dies mid-way
    op = pending.begin(pending.Op.CREATE, key, vm.id, core.server_id)
    if req.start:  # latency first: one commit writes the VM already placed
        took.done("checks")
        # a RunVm's create goes to its node while the claim commits, where it can (`ahead.py`)
        go = Ahead(core, images) if req.console is not None and goes_ahead(vm) else None
        try:
            placed = await _failing(core, vm, place(core, Versioned(vm, 0, key), req.node_id,
                                                    commit=_creating(core, vm, op),
                                                    on_placed=go.placed if go is not None else None))
            took.done("claim")
            async with pending.driving(core.store, op) as drive:
                result = await provision(core, placed, images, drive, start=True, took=took, console=req.console,
                                         ahead=go)
        finally:
            if go is not None:
                go.drop()  # unless `provision` ran it
        took.done("lease end")
        log.info("%s", took.line(f"vm {vm.id}: {CREATE_STARTED_STEPS}"))
    else:  # throughput first: the record's commit batches with the org's other creates, then the claim
        rev = await _failing(core, vm, _created(core, vm, op))
        async with pending.driving(core.store, op) as drive:
            placed = await _placed(core, Versioned(vm, rev, key), op, req.node_id)
            result = await provision(core, placed, images, drive)
    OPERATIONS.labels("create", "ok").inc()
    return result


async def _failing(core: Core, vm: VirtualMachine, step: Awaitable[T]) -> T:
    """`step` of a create before anything of it is stored: its NICs' ports are released if it fails."""
    try:
        return await step
    except PlasmaError:
        await nics.release(core.store, vm)
        OPERATIONS.labels("create", "error").inc()
        raise


async def _created(core: Core, vm: VirtualMachine, op: pending.Pending) -> int:
    """The PENDING record, its name, the pending operation and its events, the quota charged: one commit."""
    writes = [Write(keys.vm(vm.org_id, vm.project_id, vm.id), codec.dumps(vm), 0), *_own_writes(vm, op)]
    try:
        return await quotas.commit_charged(core.store, vm.org_id, vm.project_id, quotas.usage_of(vm), writes)
    except Conflict:
        raise AlreadyExists(f"a VM named {vm.name!r} already exists in {vm.org_id}/{vm.project_id}",
                            field="name") from None


async def _placed(core: Core, vm: Versioned[VirtualMachine], op: pending.Pending,
                  node_id: str | None) -> Versioned[VirtualMachine]:
    """`place` after `_created`; a VM no node takes is removed again (its quota given back)."""
    try:
        return await place(core, vm, node_id)
    except PlasmaError:
        v = vm.value
        undo = [Write(vm.key, None), Write(keys.vm_name(v.org_id, v.project_id, v.name), None), Write(op.key, None)]
        await quotas.commit_charged(core.store, v.org_id, v.project_id, -quotas.usage_of(v), undo)
        await nics.release(core.store, v)
        OPERATIONS.labels("create", "error").inc()
        raise


def _own_writes(vm: VirtualMachine, op: pending.Pending) -> list[Write]:
    """What a create writes beside the VM record: its name, the pending operation, the create's events."""
    return [Write(keys.vm_name(vm.org_id, vm.project_id, vm.name), vm.id.encode(), 0), pending.begin_write(op),
            *vm_events.created(vm)]


def _creating(core: Core, vm: VirtualMachine, op: pending.Pending) -> placement.Committer:
    """The commit of a create+start's claim: with the claim's writes (the placed record among them,
    expected new), the name, the pending operation and the create's events, its quota charged. A name
    taken meanwhile is ALREADY_EXISTS."""
    name_key = keys.vm_name(vm.org_id, vm.project_id, vm.name)
    own = _own_writes(vm, op)

    async def commit(claim: list[Write]) -> int:
        try:
            return await quotas.commit_charged(core.store, vm.org_id, vm.project_id, quotas.usage_of(vm),
                                               [*own, *claim])
        except Conflict:
            if await core.store.get(name_key) is None:
                raise  # the node's claim lost its race: placement tries again
            raise AlreadyExists(f"a VM named {vm.name!r} already exists in {vm.org_id}/{vm.project_id}",
                                field="name") from None

    return commit


async def _new_vm(core: Core, req: CreateVm, accepted: float) -> tuple[VirtualMachine, list[Image]]:
    """The VM a create makes (PENDING, not stored) and its images, everything checked; its name free."""
    _validate(req)
    found, taken = await asyncio.gather(images_for(core, req.org_id, req.spec), _name_taken(core, req),
                                        return_exceptions=True)  # both reads at once; errors in this order
    if isinstance(found, BaseException):
        raise found
    if isinstance(taken, BaseException):
        raise taken
    if taken:
        raise AlreadyExists(f"a VM named {req.name!r} already exists in {req.org_id}/{req.project_id}", field="name")
    images = found
    boot_from = boot_image(req.spec, images)
    req = replace(req, spec=spec_defaults_for(req.hypervisor, req.spec, boot_from))
    check_spec_for(req.hypervisor, req.spec, boot_from)
    now = int(time.time())
    vm = VirtualMachine(
        id=str(uuid.uuid4()), name=req.name, org_id=req.org_id, project_id=req.project_id, spec=req.spec,
        hypervisor=req.hypervisor, created_at=now, updated_at=now, created_by=req.created_by, labels=req.labels,
        metadata=req.metadata, status=VmStatus(boot=boot.accepted(accepted)), source_snapshot=req.source_snapshot,
    )
    return vm, images


async def _name_taken(core: Core, req: CreateVm) -> bool:
    """Whether the VM's name is taken in its project: from GetVm's watched name index when that holds
    every write of this process (no store read), else from the store. A fail-fast check only: the
    create's commit expects the name's key absent, so a name another replica took a moment ago, not in
    the index yet, still ends the create ALREADY_EXISTS there, with nothing written."""
    if core.vm_reads is not None:
        taken = core.vm_reads.name_taken(req.org_id, req.project_id, req.name)
        if taken is not None:
            return taken
    return await core.store.get(keys.vm_name(req.org_id, req.project_id, req.name)) is not None


async def place(core: Core, vm: Versioned[VirtualMachine], only_node: str | None = None, *,
                commit: placement.Committer | None = None,
                on_placed: Callable[[VirtualMachine], None] | None = None) -> Versioned[VirtualMachine]:
    """PENDING -> CREATING on a chosen node (`only_node` when given), claiming its capacity in the same
    commit (`commit`: a create's, which writes the record itself). `on_placed` is called with each
    placed record placement is about to commit."""
    started = time.perf_counter()

    def placer(current: VirtualMachine, node_id: str) -> VirtualMachine:
        state = transition(current.state, VmState.CREATING, vm_id=current.id, operation="place")
        placed = boot.stamped(replace(current, state=state, node_id=node_id, updated_at=int(time.time())),
                              placed_at=boot.now())
        if on_placed is not None:
            on_placed(placed)
        return placed

    result = await placement.claim(core, vm, placer, only_node=only_node, commit=commit)
    SCHEDULER_LATENCY.observe(time.perf_counter() - started)
    log.info("vm %s placed on node %s", vm.value.id, result.value.node_id)
    return result


async def provision(
    core: Core, vm: Versioned[VirtualMachine], images: list[Image], drive: pending.Driving, *, start: bool = False,
    took: Steps | None = None, console: ConsoleSink | None = None, ahead: Ahead | None = None,
) -> VirtualMachine:
    """CREATING -> STOPPED once the node's agent made the VM's disks (the create's last step); ERROR
    (with reason) if it fails. With `start`, the agent starts it too, in the same call, and the same last
    step records CREATING -> STOPPED -> STARTING -> RUNNING (each move through the transition table): one
    agent round trip and one commit where a create then a StartVm make two and four. With `console`
    (RunVm), the agent call streams the VM's console too: output that comes before the status goes to
    `console.put` as it comes, the rest is handed over once the status has come, before the last
    commit. `ahead`: the RunVm's create sent before the claim's commit (`ahead.py`), used when it can be."""
    observed: VmStatus | None = None

    def _made(v: VirtualMachine) -> VirtualMachine:
        # with `start`, the agent stamped when the disks were made (before it started the VM)
        made_at = observed.boot.image_ready_at if observed is not None and observed.boot.image_ready_at else ready_at
        made = boot.stamped(moved(v, VmState.STOPPED, "create"), image_ready_at=made_at)
        return made if observed is None else running(starting(made, made_at), observed, "start")

    try:
        if console is None:
            # with `start`, one call: the agent creates, starts and answers with the running status
            agent, ports = await _agent_and_ports(core, vm.value)
            observed = await agent.create_vm(vm.value, images, ports, start=start)
        else:
            ran = await ahead.run(console.put) if ahead is not None else None
            if ran is None:
                agent, ports = await _agent_and_ports(core, vm.value)
                ran = await agent.run_vm(vm.value, images, ports, console.put)
            observed, output = ran
            console.follow(output)  # its reader owns it now (and closes it)
        ready_at = boot.now()
    except PlasmaError as err:
        await set_error(core, vm.key, f"{'create+start' if start else 'create'} failed: {err.message}")
        raise
    took = took or Steps()  # timed for the caller's step log, when it keeps one
    took.done("agent")
    # what the node did, recorded without an fsync of its own (`Store.commit`'s durable): its outcome
    # is the node's to report again, and the next durable commit syncs it (3-6 ms less on this path)
    done = await drive.last_step(VirtualMachine, vm.key, _made, known=vm, durable=False)
    took.done("recorded")
    await refresh.ports_changed(core, done.value, done.value.spec.network)
    return done.value


async def _agent_and_ports(core: Core, vm: VirtualMachine) -> tuple[AgentClient, list[PortRequest]]:
    """The agent of `vm`'s node and the ports its NICs are plumbed with."""
    return await core.agent_for(vm), await nics.port_requests(core.store, vm)


def moved(vm: VirtualMachine, target: VmState, operation: str, **changes: object) -> VirtualMachine:
    """`vm` in state `target`, the pair checked against the transition table (INVALID_STATE otherwise):
    the one way a VM record changes state, for every module of core."""
    state = transition(vm.state, target, vm_id=vm.id, operation=operation)
    return replace(vm, state=state, updated_at=int(time.time()), **changes)


def running(vm: VirtualMachine, observed: VmStatus, operation: str) -> VirtualMachine:
    """`vm` RUNNING as the node observed it (through the transition table): start, create with `start`,
    reboot, adoption and a heartbeat that finds the process running all record it this way."""
    status = replace(
        vm.status,
        actual_state=VmState.RUNNING,
        host_pid=observed.host_pid,
        started_at=observed.started_at or int(time.time()),
        accelerator=observed.accelerator,
        last_error=None,
    )
    return boot.with_node_times(moved(vm, VmState.RUNNING, operation, status=status), observed.boot)


def starting(vm: VirtualMachine, requested_at: float) -> VirtualMachine:
    return boot.start_requested(moved(vm, VmState.STARTING, "start"), requested_at)


async def set_error(core: Core, key: str, message: str) -> None:
    def apply(vm: VirtualMachine) -> VirtualMachine:
        status = replace(vm.status, actual_state=VmState.ERROR, last_error=message)
        return moved(vm, VmState.ERROR, "fail", status=status)

    try:
        await mutate(core.store, VirtualMachine, key, apply)
    except PlasmaError as err:
        log.warning("could not record error on %s: %s", key, err)


def check_update(labels: dict[str, str] | None, metadata: dict[str, str] | None) -> None:
    if labels is not None:
        validation.labels(labels, "labels")
    if metadata is not None:
        validation.labels(metadata, "metadata")


async def update(
    core: Core, ref: VmRef, labels: dict[str, str] | None, metadata: dict[str, str] | None,
    restart_policy: RestartPolicy | None = None,
) -> VirtualMachine:
    """Labels, metadata and the restart policy (any state); a resize is `resize.py`'s."""
    check_update(labels, metadata)
    found = await core.find_vm(ref)

    def apply(vm: VirtualMachine) -> VirtualMachine:
        policy = vm.spec.restart_policy if restart_policy is None else restart_policy
        if policy == RestartPolicy.NEVER:
            vm = restarts.unscheduled(vm)  # a restart already scheduled is called off
        return replace(
            vm,
            labels=vm.labels if labels is None else labels,
            metadata=vm.metadata if metadata is None else metadata,
            spec=replace(vm.spec, restart_policy=policy),
            updated_at=int(time.time()),
        )

    return (await mutate(core.store, VirtualMachine, found.key, apply)).value


async def delete(core: Core, ref: VmRef, force: bool) -> None:
    found = await core.find_vm(ref)
    if found.value.state in (VmState.RUNNING, VmState.STARTING, VmState.STOPPING) and not force:
        raise InvalidState(
            f"VM {found.value.name} is {found.value.state.value.upper()}: stop it first, or delete with force"
        )

    def mark(vm: VirtualMachine) -> VirtualMachine:
        if vm.state == VmState.DELETED:
            return vm
        check_transition(vm.state, VmState.DELETED, operation="delete")
        return moved(vm, VmState.DELETED, "delete")

    marked = await mutate(core.store, VirtualMachine, found.key, mark)
    OPERATIONS.labels("delete", "ok").inc()
    await finish_delete(core, marked)


async def finish_delete(core: Core, vm: Versioned[VirtualMachine]) -> bool:
    """Remove a DELETED VM from its node and the store; False if the agent cannot be reached yet."""
    if vm.value.node_id is not None:
        try:
            agent = await core.agent_for(vm.value)
            await agent.delete_vm(vm.value.id)
        except NodeNotFound:  # the node was deleted (`node delete --force`): nothing left to clean there
            log.warning("vm %s: node %s no longer exists; nothing to clean up there", vm.value.id, vm.value.node_id)
        except PlasmaError as err:
            log.warning("vm %s: cleanup on node %s deferred: %s", vm.value.id, vm.value.node_id, err)
            return False

    async def remove() -> None:
        current = await read(core.store, VirtualMachine, vm.key)
        if current is None:
            return
        node: Versioned[Node] | None = None
        if current.value.node_id is not None:
            node = await read(core.store, Node, keys.node(current.value.node_id))
        need = core.scheduler.request(current.value)
        writes = [
            Write(vm.key, None, current.revision),
            Write(keys.vm_name(vm.value.org_id, vm.value.project_id, vm.value.name), None),
            *placement.release_writes(current.value, node, need),
            *vm_events.deleted(current.value),
        ]
        gone = -quotas.usage_of(vm.value)
        rev = await quotas.commit_charged(core.store, vm.value.org_id, vm.value.project_id, gone, writes)
        placement.remember_released(core, node, need, rev)
        await nics.release(core.store, vm.value)  # after the record: a crash between leaks a claim, never a live port

    await retry_on_conflict(remove)
    await refresh.ports_changed(core, vm.value, vm.value.spec.network)
    log.info("vm %s deleted", vm.value.id)
    return True
