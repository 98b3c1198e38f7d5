"""A cold reboot (or a reset that replaces the process) seen from the agent's side: between the old
process's exit and the new one's start the VM's status stays RUNNING (the reboot loop RUNNING -> RUNNING),
so a heartbeat that lands in that gap does not report an exit the control plane would act on (it used to:
RUNNING -> STOPPED mid-reboot), and the new process is supervised after."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plasmavmc.agent.image_cache import ImageCache
from plasmavmc.agent.reporter import Reporter
from plasmavmc.agent.vms import NodeVms
from plasmavmc.hypervisor.base import VmHandle
from plasmavmc.hypervisor.registry import HypervisorRegistry
from plasmavmc.hypervisor.simulated.backend import SimulatedBackend
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import CpuSpec, HypervisorType, MemorySpec, VirtualMachine, VmSpec

VM = VirtualMachine(id="3f1c7c52-1d3e-4a43-9d0e-2b1b6c1d7e01", name="cold", org_id="o", project_id="p",
                    state=VmState.RUNNING, spec=VmSpec(cpu=CpuSpec(vcpus=1), memory=MemorySpec(size_mib=64)),
                    node_id="n", hypervisor=HypervisorType.SIMULATED)


@pytest.mark.parametrize("hard", [False, True], ids=["reboot", "reset"])
async def test_status_stays_running_through_a_cold_reboot(tmp_path: Path, hard: bool) -> None:
    backend = SimulatedBackend(str(tmp_path / "sim"))
    registry = HypervisorRegistry()
    registry.register(backend)
    reporter = Reporter(["127.0.0.1:9"])  # never reached: nothing exits unasked here
    vms = NodeVms("n", registry, ImageCache(tmp_path / "cache", reporter.channels[0]), reporter)
    handle = await backend.create(VM, {})
    vms.handles[VM.id] = handle
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
    await reporter.channels[0].close()
