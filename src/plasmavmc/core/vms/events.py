"""VM events: derived from each change of a VM record and committed with it, or recorded for an
operation that keeps the record as it is (reboot, reset, snapshot, restore).

`derive(old, new)` turns a record change into events: a state change (reason from the target state:
Scheduled, Created, Starting, Started, Stopping, Stopped, Failed, Deleting), a condition set or
cleared, the guest's readiness (GuestReady), a spec change (disk or NIC attached/detached, resize),
a labels/metadata update. Usage-only changes (heartbeats) yield nothing. `records.on_change` makes
every `mutate` of a VM commit these writes in the same store commit as the record, so an event exists
exactly when its change does.

Keys are `plasmavmc/events/{org}/{project}/{vm}/{ns}-{random}`; the key's mod_revision is the event's
revision. `ENABLED` switches event writing off (the overhead benchmark compares both).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from plasmavmc.observe import logctx
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue, Store, Write
from plasmavmc.store.records import on_change, replace
from plasmavmc.types import codec
from plasmavmc.types.events import StoredEvent, VmEvent, VmEventType
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine, VmSpec

ENABLED = True
_SUFFIX = random.Random()  # seeded from os.urandom once; the key suffix must be unique, not secret
S = VmState
_REASONS: dict[VmState, str] = {
    S.PENDING: "Pending", S.CREATING: "Scheduled", S.STOPPED: "Stopped", S.STARTING: "Starting",
    S.RUNNING: "Started", S.STOPPING: "Stopping", S.MIGRATING: "Migrating", S.ERROR: "Failed",
    S.FAILED: "Failed", S.DELETED: "Deleting",
}


def event(vm: VirtualMachine, type_: VmEventType, reason: str, message: str,
          previous: VmState | None = None) -> StoredEvent:
    return StoredEvent(type_, reason, message, logctx.actor(), vm.id, vm.org_id, vm.project_id,
                       previous, vm.state, time.time_ns())


def _state_event(old: VirtualMachine, new: VirtualMachine) -> StoredEvent:
    reason = _REASONS[new.state]
    message = f"{old.state.value.upper()} -> {new.state.value.upper()}"
    kind = VmEventType.STATE_CHANGED
    if new.state in (S.ERROR, S.FAILED):
        kind, message = VmEventType.FAILED, new.status.last_error or message
    elif new.state == S.CREATING:
        message = f"placed on node {new.node_id}"
    elif new.state == S.STOPPED and old.state == S.CREATING:
        reason, message = "Created", f"disks ready on node {new.node_id}"
    elif new.state == S.STOPPED and old.state == S.RUNNING and new.status.last_error:
        reason, message = "HypervisorExited", new.status.last_error  # killed, crashed, host rebooted
    elif new.state == S.STOPPED and old.state == S.RUNNING:
        reason, message = "PoweredOff", "the guest powered off"
    return event(new, kind, reason, message, old.state)


def _condition_events(old: VirtualMachine, new: VirtualMachine) -> list[StoredEvent]:
    if old.status.conditions == new.status.conditions:
        return []
    before = {c.type: c for c in old.status.conditions}
    after = {c.type: c for c in new.status.conditions}
    out = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if now is not None and (was is None or (was.status, was.reason) != (now.status, now.reason)):
            out.append(event(new, VmEventType.CONDITION_CHANGED, now.reason or name,
                             f"{name}={now.status}: {now.message}"))
        elif now is None and was is not None:
            out.append(event(new, VmEventType.CONDITION_CHANGED, f"{name}Cleared", f"{name} cleared"))
    return out


def _spec_events(old: VirtualMachine, new: VirtualMachine) -> list[StoredEvent]:
    out = []
    if old.spec != new.spec:
        for what, before, after in (
            ("Disk", {d.id for d in old.spec.disks}, {d.id for d in new.spec.disks}),
            ("Nic", {n.id for n in old.spec.network}, {n.id for n in new.spec.network}),
        ):
            out += [event(new, VmEventType.UPDATED, f"{what}Attached", i) for i in sorted(after - before)]
            out += [event(new, VmEventType.UPDATED, f"{what}Detached", i) for i in sorted(before - after)]
        policy = (old.spec.restart_policy, new.spec.restart_policy)
        if not out and replace(old.spec, restart_policy=policy[1]) != new.spec:
            out.append(event(new, VmEventType.UPDATED, "Resized", _resize_message(old.spec, new.spec)))
        if policy[0] != policy[1]:
            out.append(event(new, VmEventType.UPDATED, "RestartPolicyChanged",
                             f"restart policy {policy[0].value} -> {policy[1].value}"))
    if (old.labels, old.metadata) != (new.labels, new.metadata):
        out.append(event(new, VmEventType.UPDATED, "Updated", "labels or metadata changed"))
    return out


def _resize_message(old: VmSpec, new: VmSpec) -> str:
    parts = []
    if old.cpu.vcpus != new.cpu.vcpus:
        parts.append(f"vcpus {old.cpu.vcpus} -> {new.cpu.vcpus}")
    if old.memory.size_mib != new.memory.size_mib:
        parts.append(f"memory {old.memory.size_mib} -> {new.memory.size_mib} MiB")
    sizes = {d.id: d.size_gib for d in old.disks}
    parts += [f"disk {d.id} {sizes[d.id]} -> {d.size_gib} GiB" for d in new.disks
              if d.id in sizes and sizes[d.id] != d.size_gib]
    return ", ".join(parts) or "spec changed"


def derive(old: VirtualMachine, new: VirtualMachine) -> list[StoredEvent]:
    """The events a record change amounts to (none for usage-only changes)."""
    out = [_state_event(old, new)] if old.state != new.state else []
    if new.status.last_error and new.status.last_error != old.status.last_error and not out:
        out.append(event(new, VmEventType.FAILED, "Failed", new.status.last_error))
    return out + _condition_events(old, new) + _spec_events(old, new) + _ready_events(old, new)


def _ready_events(old: VirtualMachine, new: VirtualMachine) -> list[StoredEvent]:
    was, now = old.status.boot, new.status.boot
    if now.ready_at <= 0 or was.ready_at > 0:
        return []
    took = now.ready_at - now.start_requested_at
    return [event(new, VmEventType.CONDITION_CHANGED, "GuestReady", f"guest ready {took:.2f}s after the start")]


def writes(events: Sequence[StoredEvent]) -> list[Write]:
    if not ENABLED:
        return []
    out = []
    for e in events:
        stamp = f"{e.timestamp_ns:020d}-{_SUFFIX.getrandbits(32):08x}"
        out.append(Write(keys.vm_event(e.org_id, e.project_id, e.vm_id, stamp), codec.dumps(e), 0))
    return out


def derive_writes(old: VirtualMachine, new: VirtualMachine) -> list[Write]:
    return writes(derive(old, new)) if ENABLED else []


on_change(VirtualMachine, derive_writes)


def created(vm: VirtualMachine) -> list[Write]:
    return writes([event(vm, VmEventType.CREATED, "Accepted", f"VM {vm.name} accepted")])


def deleted(vm: VirtualMachine) -> list[Write]:
    return writes([event(vm, VmEventType.DELETED, "Deleted", f"VM {vm.name} removed")])


async def record(store: Store, vm: VirtualMachine, type_: VmEventType, reason: str, message: str) -> None:
    """An event of an operation that changes no record (reboot, snapshot, ...), in a commit of its own."""
    if ENABLED:
        await store.commit(writes([event(vm, type_, reason, message)]))


def from_kv(kv: KeyValue) -> VmEvent:
    e = codec.loads(StoredEvent, kv.value)
    return VmEvent(
        type=e.type, previous_state=e.previous_state, state=e.state or S.PENDING, vm=None,
        revision=kv.mod_revision, timestamp=e.timestamp_ns // 1_000_000_000, reason=e.reason,
        message=e.message, actor=e.actor, vm_id=e.vm_id, id=kv.key.rpartition("/")[2],
    )
