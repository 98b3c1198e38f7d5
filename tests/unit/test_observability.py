"""Pure parts of observability: which VM record changes are events (heartbeats are not), event
retention, the boot timeline's steps, structured log fields (and no tokens in them), and that the
Grafana dashboard only uses metrics that exist."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

from plasmavmc.config.logs import setup_logging
from plasmavmc.core.loops.event_retention import Retention, _expired
from plasmavmc.core.vms import events
from plasmavmc.observe import logctx
from plasmavmc.observe import metrics as m
from plasmavmc.types.events import VmEventType
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import BootTimeline, Condition, ResourceUsage, VirtualMachine

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
