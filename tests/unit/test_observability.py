"""Pure parts of observability: which VM record changes are events (heartbeats are not), event
retention, the boot timeline's steps, structured log fields (and no tokens in them), and that the
Grafana dashboard only uses metrics that exist; what the observing interceptor works out once per
method or message type (scope fields, metric children) and per call (request ids)."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import grpc

from plasmavmc.config.logs import setup_logging
from plasmavmc.core.loops.event_retention import Retention, _expired
from plasmavmc.core.vms import events
from plasmavmc.observe import interceptor, logctx
from plasmavmc.observe import metrics as m
from plasmavmc.types.events import VmEventType
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import BootTimeline, Condition, DiskSpec, MemorySpec, ResourceUsage, VirtualMachine
from plasmavmc.v1 import vm_pb2

ROOT = Path(__file__).resolve().parents[2]
VM = VirtualMachine(id="11111111-2222-3333-4444-555555555555", name="web", org_id="o", project_id="p",
                    state=VmState.RUNNING, node_id="n1")


def _with_status(vm: VirtualMachine, **changes: object) -> VirtualMachine:
    return replace(vm, status=replace(vm.status, **changes))


def test_usage_only_changes_are_not_events() -> None:
    busy = _with_status(VM, resource_usage=ResourceUsage(cpu_percent=50.0, disk_read_bytes=10))
    assert events.derive(VM, busy) == []
    assert events.derive(VM, replace(VM, updated_at=99)) == []


def test_state_changes_failures_and_conditions() -> None:
    started = events.derive(replace(VM, state=VmState.STARTING), VM)
    assert [(e.type, e.reason, e.previous_state, e.state) for e in started] == [
        (VmEventType.STATE_CHANGED, "Started", VmState.STARTING, VmState.RUNNING)]
    failed = _with_status(replace(VM, state=VmState.ERROR), last_error="qemu died: signal 9")
    [e] = events.derive(VM, failed)
    assert (e.type, e.reason, e.message) == (VmEventType.FAILED, "Failed", "qemu died: signal 9")
    flagged = _with_status(VM, conditions=(Condition("NodeUnresponsive", True, "HeartbeatTimeout", "silent"),))
    assert [(e.type, e.reason) for e in events.derive(VM, flagged)] == [
        (VmEventType.CONDITION_CHANGED, "HeartbeatTimeout")]
    assert [e.reason for e in events.derive(flagged, VM)] == ["NodeUnresponsiveCleared"]
    ready = _with_status(VM, boot=BootTimeline(start_requested_at=10.0, ready_at=12.5))
    [e] = events.derive(VM, ready)
    assert (e.reason, e.message) == ("GuestReady", "guest ready 2.50s after the start")


def test_event_actor_comes_from_the_request_context() -> None:
    def actor_after(**fields: str) -> str:
        logctx.bind(**fields)
        return events.derive(replace(VM, state=VmState.STARTING), VM)[0].actor

    # each in a context of its own, as each gRPC call runs in its own task
    assert contextvars.copy_context().run(actor_after) == "system"
    assert contextvars.copy_context().run(actor_after, principal="alice") == "alice"
    assert contextvars.copy_context().run(actor_after, node="n1") == "node:n1"


def test_events_can_be_switched_off() -> None:
    change = (replace(VM, state=VmState.STARTING), VM)
    assert len(events.derive_writes(*change)) == 1
    events.ENABLED = False
    try:
        assert events.derive_writes(*change) == []
    finally:
        events.ENABLED = True


def test_retention_keeps_the_newest_and_the_recent() -> None:
    now = 1_000 * 10**9
    keys_ = [f"plasmavmc/events/o/p/vm/{t * 10**9:020d}-ab" for t in (100, 200, 900, 950, 990)]
    assert _expired(keys_, Retention(max_age_seconds=500, max_per_vm=10), now) == keys_[:2]
    assert _expired(keys_, Retention(max_age_seconds=10_000, max_per_vm=2), now) == keys_[:3]


def test_boot_steps_stop_at_the_first_missing_one() -> None:
    boot = BootTimeline(10.0, 10.5, 11.0, 11.25, 12.0, 0.0, 0.0)
    assert boot.steps() == [("placed", 0.5), ("image_ready", 0.5), ("start_requested", 0.25),
                            ("process_up", 0.75)]
    assert BootTimeline().steps() == []


def test_json_logs_carry_request_fields_and_no_token() -> None:
    out = io.StringIO()

    def log_one() -> None:
        logctx.bind(request_id="r-1", principal="bob", method="StartVm", vm_id=VM.id)
        logging.getLogger("plasmavmc.test").warning("start failed: %s", "no node")

    setup_logging("info", "json", out)
    try:
        contextvars.copy_context().run(log_one)
    finally:
        setup_logging("info", "text")
    line = json.loads(out.getvalue().splitlines()[-1])
    assert {k: line[k] for k in ("request_id", "principal", "method", "vm_id", "level")} == {
        "request_id": "r-1", "principal": "bob", "method": "StartVm", "vm_id": VM.id, "level": "warning"}
    assert not any("token" in key or "authorization" in key for key in line)


def test_dashboard_uses_only_metrics_that_exist() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/plasmavmc.json").read_text())
    used = {re.sub(r"_(bucket|sum|count)$", "", name)
            for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"plasmavmc_\w+", target["expr"])}
    server = {metric._name for metric in vars(m).values() if hasattr(metric, "_name")}
    server |= {f"{name}_total" for name in server}  # prometheus_client keeps counters' names without it
    agent = set(re.findall(r'"(plasmavmc_\w+)"', (ROOT / "src/plasmavmc/agent/metrics.py").read_text()))
    agent |= {f"plasmavmc_vm_{n}_total" for n in re.findall(r'\("\w+", "(\w+)", "', (
        ROOT / "src/plasmavmc/agent/metrics.py").read_text())}
    assert used <= server | agent, used - server - agent
    assert len(dashboard["panels"]) >= 15


def test_spec_and_label_changes_are_events() -> None:
    disk = replace(VM, spec=replace(VM.spec, disks=(DiskSpec(id="data"),)))
    assert [(e.type, e.reason, e.message) for e in events.derive(VM, disk)] == [
        (VmEventType.UPDATED, "DiskAttached", "data")]
    assert [e.reason for e in events.derive(disk, VM)] == ["DiskDetached"]
    bigger = replace(VM, spec=replace(VM.spec, memory=MemorySpec(size_mib=512)))
    assert [e.reason for e in events.derive(VM, bigger)] == ["Resized"]
    assert [e.reason for e in events.derive(VM, replace(VM, labels={"a": "b"}))] == ["Updated"]


def test_events_of_one_instant_get_distinct_keys() -> None:
    same = [events.event(VM, VmEventType.UPDATED, "Updated", str(i)) for i in range(200)]
    same = [replace(e, timestamp_ns=1) for e in same]
    stored = events.writes(same)
    assert len({w.key for w in stored}) == 200
    assert all(w.key.startswith(f"plasmavmc/events/o/p/{VM.id}/{1:020d}-") for w in stored)


def test_request_scope_from_a_vm_ref_or_flat_fields() -> None:
    ref = vm_pb2.StartVmRequest(vm=vm_pb2.VmRef(org_id="o1", project_id="p1", vm_id="v1"))
    assert interceptor._scope_of(ref) == {"org": "o1", "project": "p1", "vm_id": "v1"}
    flat = vm_pb2.CreateVmRequest(org_id="o2", project_id="p2")
    assert interceptor._scope_of(flat) == {"org": "o2", "project": "p2"}
    assert interceptor._scope_of(object()) == {}  # e.g. a request the guard could not decode


def test_request_ids_offered_or_new() -> None:
    assert interceptor._request_id("abc-1.2:3") == "abc-1.2:3"
    fresh = {interceptor._request_id(bad) for bad in ("", "has space", "x" * 65, "a\nb")}
    assert len(fresh) == 4 and all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in fresh)


def test_rpc_metrics_count_each_code_once() -> None:
    method = interceptor._method("/plasmavmc.v1.TestService/Probe")
    assert interceptor._method("/plasmavmc.v1.TestService/Probe") is method

    class Ctx:
        def __init__(self, code: object) -> None:
            self._code = code

        def code(self) -> object:
            return self._code

    def count(code: str) -> float:
        value = m.RPC_HANDLED.labels("plasmavmc.v1.TestService", "Probe", code)._value.get()
        return float(value)

    before = {code: count(code) for code in ("OK", "NOT_FOUND", "CANCELLED")}
    method.done(0.0, Ctx(None), None)
    method.done(0.0, Ctx(None), None)
    method.done(0.0, Ctx(grpc.StatusCode.NOT_FOUND), None)
    method.done(0.0, Ctx(None), asyncio.CancelledError())
    assert {code: count(code) - before[code] for code in before} == {"OK": 2, "NOT_FOUND": 1, "CANCELLED": 1}
    seconds = m.RPC_SECONDS.labels("plasmavmc.v1.TestService", "Probe")
    assert seconds._sum.get() > 0


def test_call_metadata_is_read_once_per_call_first_value_per_key() -> None:
    import contextvars

    from plasmavmc.observe.callmeta import first_values

    class Context:  # what a servicer context offers: a fresh tuple per ask
        def __init__(self, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
            self.metadata, self.asked = metadata, 0

        def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
            self.asked += 1
            return self.metadata

    one = Context((("authorization", "Bearer a"), ("x-request-id", "r1"), ("authorization", "Bearer b"),
                   ("trace-bin", b"\x00")))
    other = Context((("authorization", "Bearer c"),))

    def call() -> None:
        assert first_values(one) == {"authorization": "Bearer a", "x-request-id": "r1"}
        assert first_values(one)["authorization"] == "Bearer a" and one.asked == 1  # kept for the call
        assert first_values(other) == {"authorization": "Bearer c"}  # another context is read afresh

    contextvars.copy_context().run(call)
    contextvars.copy_context().run(lambda: first_values(one))  # a new call (task) reads again
    assert one.asked == 2
