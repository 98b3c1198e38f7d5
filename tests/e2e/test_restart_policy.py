"""Restart policy through the real server, agent and QEMU (issue 15 item 6).

- Every QEMU of the test's own agent SIGKILLed at once: `always` and `on-failure` VMs come back RUNNING
  (new processes) with a RestartedAfterCrash event; the `never` VM stays down (STOPPED, the reason in
  `last_error`) with HypervisorExited and NotRestarted events.
- A "host reboot" (the agent SIGKILLed together with every QEMU, then the agent restarted): the same,
  with RestartedAfterHostReboot; the `never` VM is STOPPED.
- A clean guest power-off: `on-failure` stays STOPPED (no restart scheduled, NotRestarted), `always`
  comes back (RestartedAfterPowerOff).
- A VM that keeps crashing is restarted with backoff `MAX_RESTARTS` times, then left in ERROR saying so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import open_console
from plasmavmc.core.vms.restarts import MAX_RESTARTS
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import RestartPolicy, VirtualMachine
from tests.conftest import Cluster, needs_qemu, restartable_cluster
from tests.contract.backends import read_until, run
from tests.e2e.helpers import ORG, PROJECT, WsStream, console_until, tiny_spec
from tests.e2e.test_agent_restart import agent_back

pytestmark = needs_qemu
P = RestartPolicy
BOOT_S = 180.0


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    with restartable_cluster(tmp_path_factory.mktemp("restarts"), guest_dir) as c:
        yield c


@pytest.fixture(scope="module")
async def api(own_cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(own_cluster.api) as c:
        yield c


async def _boot(api: PlasmaClient, name: str, policy: RestartPolicy) -> VirtualMachine:
    vm = await api.create_vm(name, ORG, PROJECT, dataclasses.replace(tiny_spec(), restart_policy=policy))
    assert vm.spec.restart_policy is policy
    await api.start_vm(ORG, PROJECT, vm.id)
    await console_until(api, vm.id, f"PLASMAVMC-READY name={name} ", timeout=BOOT_S)
    return await api.get_vm(ORG, PROJECT, vm.id)


async def _boot_all(api: PlasmaClient, prefix: str) -> dict[RestartPolicy, VirtualMachine]:
    vms = await asyncio.gather(*(_boot(api, f"{prefix}-{p.value}", p) for p in P))
    return {vm.spec.restart_policy: vm for vm in vms}


async def _event(api: PlasmaClient, vm: VirtualMachine, reason: str, timeout: float = 120.0) -> str:
    """The message of the VM's first event with `reason`, waiting for it (bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            async for e in api.vm_events(ORG, PROJECT, vm.id):
                if e.reason == reason:
                    return e.message
            await asyncio.sleep(0.5)  # polling the event history, bounded by the timeout


async def _running_again(api: PlasmaClient, vm: VirtualMachine, timeout: float = 120.0) -> VirtualMachine:
    """The VM RUNNING in a process other than `vm`'s (bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            now = await api.get_vm(ORG, PROJECT, vm.id)
            if now.state is VmState.RUNNING and now.status.host_pid not in (None, vm.status.host_pid):
                return now
            await asyncio.sleep(0.3)  # polling the API, bounded by the timeout


def _kill(vm: VirtualMachine) -> None:
    assert vm.status.host_pid, vm.status
    os.kill(vm.status.host_pid, signal.SIGKILL)  # a QEMU this test's own agent started


async def _delete(api: PlasmaClient, vms: dict[RestartPolicy, VirtualMachine]) -> None:
    for vm in vms.values():
        await api.delete_vm(ORG, PROJECT, vm.id, force=True)


async def test_every_qemu_killed_at_once(api: PlasmaClient) -> None:
    vms = await _boot_all(api, "crash")
    for vm in vms.values():
        _kill(vm)
    for policy in (P.ALWAYS, P.ON_FAILURE):
        back = await _running_again(api, vms[policy])
        assert back.status.restarts == 1, (policy, back.status)
        assert "restart 1 of at most" in await _event(api, vms[policy], "RestartedAfterCrash")
    never = await api.wait_for_state(ORG, PROJECT, vms[P.NEVER].id, {VmState.ERROR, VmState.STOPPED}, 60)
    assert never.state is VmState.STOPPED and never.status.restart_due_at == 0, never.status
    assert "exited unexpectedly" in (never.status.last_error or ""), never.status
    assert "restart policy never: not restarted" in await _event(api, never, "NotRestarted")
    assert "exited unexpectedly" in await _event(api, never, "HypervisorExited")
    await _delete(api, vms)


async def test_host_reboot(own_cluster: Cluster, api: PlasmaClient) -> None:
    vms = await _boot_all(api, "reboot")
    own_cluster.agent.kill(signal.SIGKILL)
    for vm in vms.values():
        _kill(vm)
    restarted_at = int(time.time()) + 1
    own_cluster.agent.start()
    await agent_back(api, restarted_at)
    for policy in (P.ALWAYS, P.ON_FAILURE):
        await _running_again(api, vms[policy])
        message = await _event(api, vms[policy], "RestartedAfterHostReboot")
        assert "while the agent was down" in message, message
        await console_until(api, vms[policy].id, f"PLASMAVMC-READY name=reboot-{policy.value} ", count=2,
                            timeout=BOOT_S)
    never = await api.wait_for_state(ORG, PROJECT, vms[P.NEVER].id, {VmState.STOPPED, VmState.ERROR}, 60)
    assert never.state is VmState.STOPPED and never.status.restart_due_at == 0, never.status
    assert "while the agent was down" in await _event(api, never, "NotRestarted")
    await _delete(api, vms)


async def _power_off(own_cluster: Cluster, vm: VirtualMachine) -> None:
    """`poweroff -f` typed on the guest's shell (once it answers), then its kernel's last line awaited."""
    shell = WsStream(await open_console(own_cluster.console, ORG, PROJECT, vm.id))
    try:
        await run(shell, "echo bye")
        await shell.write(b"poweroff -f\n")
        await read_until(shell, b"reboot: Power down", bytearray(), 60)
    finally:
        await shell.close()


async def test_clean_power_off(own_cluster: Cluster, api: PlasmaClient) -> None:
    vms = {vm.spec.restart_policy: vm for vm in await asyncio.gather(
        _boot(api, "off-on-failure", P.ON_FAILURE), _boot(api, "off-always", P.ALWAYS))}
    for vm in vms.values():
        await _power_off(own_cluster, vm)
    stopped = await api.wait_for_state(ORG, PROJECT, vms[P.ON_FAILURE].id, {VmState.STOPPED, VmState.ERROR}, 120)
    assert stopped.state is VmState.STOPPED and stopped.status.restart_due_at == 0, stopped.status
    assert "on-failure: not restarted" in await _event(api, stopped, "NotRestarted")
    await _running_again(api, vms[P.ALWAYS])
    assert "restart 1 of" in await _event(api, vms[P.ALWAYS], "RestartedAfterPowerOff")
    assert (await api.get_vm(ORG, PROJECT, stopped.id)).state is VmState.STOPPED  # decided once, at the exit
    await _delete(api, vms)


async def test_a_vm_that_keeps_crashing_ends_in_error(api: PlasmaClient) -> None:
    vm = await _boot(api, "crashy", P.ALWAYS)
    for n in range(1, MAX_RESTARTS + 1):
        _kill(vm)
        vm = await _running_again(api, vm, timeout=120)  # backoff 1, 2, 4, 8, 16 s
        assert vm.status.restarts == n, vm.status
    _kill(vm)
    failed = await api.wait_for_state(ORG, PROJECT, vm.id, {VmState.ERROR}, 60)
    assert failed.status.last_error and "not restarted any more" in failed.status.last_error, failed.status
    assert f"restarted {MAX_RESTARTS} times in a row" in failed.status.last_error
    assert failed.status.restart_due_at == 0
    await api.delete_vm(ORG, PROJECT, vm.id, force=True)
