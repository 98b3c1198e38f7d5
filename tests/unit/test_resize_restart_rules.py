"""The pure rules of resize (`validation.resized_spec`, `validation.vm_resize_of`) and of the restart
policy (`core/vms/restarts.py`): which exits restart, the backoff, the bound, and the events and index key
each decision commits."""

from __future__ import annotations

import time

import pytest

from plasmavmc import validation
from plasmavmc.cli.output import restart_line
from plasmavmc.core.vms import restarts
from plasmavmc.errors import InvalidArgument
from plasmavmc.store import keys
from plasmavmc.store.records import derived, replace
from plasmavmc.types import codec
from plasmavmc.types.events import StoredEvent
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    CpuSpec,
    DiskSource,
    DiskSpec,
    MemorySpec,
    RestartPolicy,
    VirtualMachine,
    VmResize,
    VmSpec,
    VmStatus,
)

SPEC = VmSpec(cpu=CpuSpec(vcpus=1), memory=MemorySpec(size_mib=256),
              disks=(DiskSpec(id="root", source=DiskSource(image_id="img"), size_gib=2),))
K = ExitKind
P = RestartPolicy


def _vm(policy: RestartPolicy, **status: object) -> VirtualMachine:
    return VirtualMachine(id="7d5b3c3e-6f0e-4a53-9a43-3f1f1f1f1f1f", name="v", org_id="o", project_id="p",
                          state=VmState.RUNNING, spec=replace(SPEC, restart_policy=policy),
                          status=VmStatus(actual_state=VmState.RUNNING, host_pid=42, **status))  # type: ignore[arg-type]


def test_resized_spec_grows_and_refuses_shrinks_naming_the_field() -> None:
    grown = validation.resized_spec(SPEC, VmResize(vcpus=2, memory_mib=512, disk_sizes={"root": 3}))
    assert (grown.cpu.vcpus, grown.memory.size_mib, grown.disks[0].size_gib) == (2, 512, 3)
    assert validation.resized_spec(SPEC, VmResize()) == SPEC
    for change, field in ((VmResize(disk_sizes={"root": 1}), "disk_sizes[root].size_gib"),
                          (VmResize(disk_sizes={"data": 4}), "disk_sizes[data].disk_id")):
        with pytest.raises(InvalidArgument) as err:
            validation.resized_spec(SPEC, change)
        assert err.value.field == field
    topo = replace(SPEC, cpu=CpuSpec(vcpus=4, sockets=2, cores_per_socket=2))
    with pytest.raises(InvalidArgument, match="topology"):
        validation.resized_spec(topo, VmResize(vcpus=6))


def test_resize_fields_are_checked_at_the_wire() -> None:
    for args, field in (((0, 1, ()), "memory_mib"), ((999, 0, ()), "vcpus"),
                        ((0, 0, (("root", 2), ("root", 3))), "disk_sizes.disk_id"),
                        ((0, 0, (("../x", 2),)), "disk_sizes.disk_id"),
                        ((0, 0, (("root", 0),)), "disk_sizes[root].size_gib")):
        with pytest.raises(InvalidArgument) as err:
            validation.vm_resize_of(*args)
        assert err.value.field == field, args
    assert validation.vm_resize_of(2, 0, (("root", 3),)) == VmResize(vcpus=2, disk_sizes={"root": 3})


@pytest.mark.parametrize(("policy", "kind", "restart"), [
    (P.NEVER, K.CRASHED, False), (P.NEVER, K.HOST_REBOOT, False), (P.NEVER, K.GUEST_POWEROFF, False),
    (P.ON_FAILURE, K.CRASHED, True), (P.ON_FAILURE, K.HOST_REBOOT, True), (P.ON_FAILURE, K.GUEST_POWEROFF, False),
    (P.ALWAYS, K.CRASHED, True), (P.ALWAYS, K.HOST_REBOOT, True), (P.ALWAYS, K.GUEST_POWEROFF, True),
    (P.ALWAYS, K.REQUESTED, False),
])
def test_which_exits_restart(policy: RestartPolicy, kind: ExitKind, restart: bool) -> None:
    assert restarts.wanted(policy, kind) is restart


def test_after_exit_schedules_with_backoff_and_gives_up_after_the_bound() -> None:
    now = int(time.time())
    crashed = restarts.after_exit(_vm(P.ALWAYS), K.CRASHED, "killed by SIGKILL")
    assert crashed.state is VmState.STOPPED and crashed.status.restart_reason == "RestartedAfterCrash"
    assert crashed.status.last_error == "killed by SIGKILL"
    never = restarts.after_exit(_vm(P.NEVER), K.CRASHED, "killed by SIGKILL")
    assert (never.state, never.status.restart_due_at, never.status.last_error) == (
        VmState.STOPPED, 0, "killed by SIGKILL")  # down, intact, saying why: a power-state sync
    assert now + 1 <= crashed.status.restart_due_at <= now + 2
    second = restarts.after_exit(_vm(P.ALWAYS, restarts=3, last_restart_at=now), K.HOST_REBOOT, "gone")
    assert second.state is VmState.STOPPED and second.status.restart_due_at >= now + 8
    assert second.status.restart_reason == "RestartedAfterHostReboot"
    stable = restarts.after_exit(_vm(P.ALWAYS, restarts=5, last_restart_at=now - restarts.STABLE_S), K.CRASHED, "x")
    assert stable.status.restarts == 0 and stable.status.restart_due_at > 0  # a long run ends the row
    done = restarts.after_exit(_vm(P.ON_FAILURE, restarts=5, last_restart_at=now), K.CRASHED, "boom")
    assert done.state is VmState.ERROR and done.status.restart_due_at == 0
    assert done.status.last_error and "restarted 5 times in a row" in done.status.last_error
    off = restarts.after_exit(_vm(P.ON_FAILURE), K.GUEST_POWEROFF, "the guest powered off")
    assert off.state is VmState.STOPPED and off.status.restart_due_at == 0 and off.status.last_error is None


def _reasons(old: VirtualMachine, new: VirtualMachine) -> tuple[list[str], list[str]]:
    writes = derived(VirtualMachine, old, new)
    events = [codec.loads(StoredEvent, w.value).reason for w in writes
              if w.key.startswith(keys.EVENTS) and w.value is not None]
    index = [w.key + ("=put" if w.value else "=delete") for w in writes if w.key.startswith(keys.RESTARTS)]
    return events, index


def test_each_decision_is_an_event_and_the_index_follows_the_schedule() -> None:
    vm = _vm(P.ALWAYS)
    scheduled = restarts.after_exit(vm, K.CRASHED, "killed")
    events, index = _reasons(vm, scheduled)
    assert "RestartScheduled" in events and index == [keys.restart(vm.id) + "=put"]
    taken = restarts.restarted(scheduled)
    events, index = _reasons(scheduled, taken)
    assert index == [keys.restart(vm.id) + "=put"]  # a claim: due again if no start is recorded
    assert taken.status.restart_due_at >= int(time.time()) + restarts.CLAIM_S - 1
    events, index = _reasons(taken, restarts.unscheduled(taken))
    assert index == [keys.restart(vm.id) + "=delete"]
    never = _vm(P.NEVER)
    events, index = _reasons(never, restarts.after_exit(never, K.CRASHED, "killed"))
    assert "NotRestarted" in events and index == []


def test_vm_get_shows_the_policy_and_the_schedule() -> None:
    assert restart_line(_vm(P.NEVER)) == "never"
    due = _vm(P.ALWAYS, restarts=2, restart_due_at=int(time.time()) + 4, restart_reason="RestartedAfterCrash")
    line = restart_line(due)
    assert line.startswith("always (2 restarts in a row; next in ") and line.endswith("s: RestartedAfterCrash)")


def test_setting_never_calls_a_scheduled_restart_off() -> None:
    scheduled = restarts.after_exit(_vm(P.ALWAYS), K.CRASHED, "killed")
    off = restarts.unscheduled(scheduled)
    assert off.status.restart_due_at == 0 and off.status.restart_reason == ""
    assert _reasons(scheduled, off)[1] == [keys.restart(scheduled.id) + "=delete"]
