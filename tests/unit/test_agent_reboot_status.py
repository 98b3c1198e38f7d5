"""A VM's status as the agent reads it around a process's end.

A cold reboot (or a reset that replaces the process): between the old process's exit and the new one's
start the VM's status stays RUNNING (the reboot loop RUNNING -> RUNNING), so a heartbeat that lands in that
gap does not report an exit the control plane would act on (it used to: RUNNING -> STOPPED mid-reboot),
and the new process is supervised after. An exit unasked: a status read before the supervisor has handled
it carries the supervisor's kind and reason (it used to say a reasonless STOPPED, which the control plane
took for a crash "hypervisor process is gone", then ignored the exit report with the real reason)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plasmavmc.agent import vms as vms_module
from plasmavmc.agent.image_cache import ImageCache
from plasmavmc.agent.reporter import Reporter
from plasmavmc.agent.vms import NodeVms
from plasmavmc.hypervisor.base import ExitReport, VmHandle
from plasmavmc.hypervisor.registry import HypervisorRegistry
from plasmavmc.hypervisor.simulated.backend import SimulatedBackend
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import CpuSpec, HypervisorType, MemorySpec, VirtualMachine, VmSpec


async def _node(tmp_path: Path) -> tuple[SimulatedBackend, NodeVms, VmHandle]:
    """A node's VM table over a simulated backend holding VM (created, not started)."""
    backend = SimulatedBackend(str(tmp_path / "sim"))
    registry = HypervisorRegistry()
    registry.register(backend)
    reporter = Reporter(["127.0.0.1:9"])  # never reached: exit reports are retried until the loop ends
    vms = NodeVms("n", registry, ImageCache(tmp_path / "cache", reporter.channels[0]), reporter)
    handle = await backend.create(VM, {})
    vms.handles[VM.id] = handle
    return backend, vms, handle


VM = VirtualMachine(id="3f1c7c52-1d3e-4a43-9d0e-2b1b6c1d7e01", name="cold", org_id="o", project_id="p",
                    state=VmState.RUNNING, spec=VmSpec(cpu=CpuSpec(vcpus=1), memory=MemorySpec(size_mib=64)),
                    node_id="n", hypervisor=HypervisorType.SIMULATED)


@pytest.mark.parametrize("hard", [False, True], ids=["reboot", "reset"])
async def test_status_stays_running_through_a_cold_reboot(tmp_path: Path, hard: bool) -> None:
    backend, vms, handle = await _node(tmp_path)
    await backend.start(handle)
    between, resume = asyncio.Event(), asyncio.Event()

    async def cold_reboot(h: VmHandle) -> None:  # what vmdir's `_restart` does: stop (or kill), then start
        await (backend.kill(h) if hard else backend.stop(h, 1.0))
        between.set()
        await resume.wait()
        await backend.start(h)

    setattr(backend, "reset" if hard else "reboot", cold_reboot)
    rebooting = asyncio.create_task(vms.restart(VM.id, hard=hard))
    async with asyncio.timeout(10):
        await between.wait()
    assert (await backend.status(handle)).actual_state is VmState.STOPPED  # the process is gone ...
    assert (await vms.status(VM.id)).actual_state is VmState.RUNNING  # ... yet the VM runs on, rebooting
    resume.set()
    await rebooting
    assert (await vms.status(VM.id)).actual_state is VmState.RUNNING
    assert vms.exit_kind(VM.id) is None  # the reboot's stop is nobody's exit
    assert VM.id in vms._supervisors  # the new process is watched
    backend.crash(VM.id)  # after the reboot, an exit is an exit again
    assert (await vms.status(VM.id)).actual_state is VmState.STOPPED
    await vms.close()
    await vms.reporter.channels[0].close()


async def _supervised(vms: NodeVms) -> None:
    """Started through the VM table, once its supervisor waits for the exit (a poll with a deadline)."""
    await vms.start(VM.id)
    async with asyncio.timeout(10):
        while VM.id not in vms._exit_waits:
            await asyncio.sleep(0)


async def test_a_status_read_before_the_supervisor_carries_the_exit(tmp_path: Path) -> None:
    backend, vms, handle = await _node(tmp_path)
    await _supervised(vms)
    backend._exit(handle, ExitKind.GUEST_POWEROFF)  # the supervisor runs only once this test awaits
    status = await vms.status(VM.id)  # a heartbeat's read, first
    assert status.actual_state is VmState.STOPPED and status.last_error == "simulated exit", status
    assert vms.exit_kind(VM.id) is ExitKind.GUEST_POWEROFF  # not a crash: the policy decides on the real kind
    await vms.close()
    await vms.reporter.channels[0].close()


async def test_a_supervisor_that_never_classifies_leaves_a_plain_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, vms, handle = await _node(tmp_path)
    await backend.start(handle)
    stuck: asyncio.Future[ExitReport] = asyncio.get_running_loop().create_future()
    vms._exit_waits[VM.id] = stuck  # a supervisor whose classification does not come
    monkeypatch.setattr(vms_module, "EXIT_CLASSIFY_S", 0.05)
    backend._exit(handle, ExitKind.CRASHED)
    status = await vms.status(VM.id)
    assert status.actual_state is VmState.STOPPED and not status.last_error, status  # the server says why
    assert vms.exit_kind(VM.id) is None
    assert not stuck.done()  # a status read never cancels the supervisor's wait
    stuck.cancel()
    await vms.close()
    await vms.reporter.channels[0].close()
