"""A RunVm's create sent to its node ahead of the claim's commit, so that the boot does not wait for it.

A create+start commits the VM's record and its node's claim in one commit, then asks the node (RunVm).
For a Firecracker VM from the node's warm pool, the boot (~10 ms) is most of what follows; the commit
before it (~1-2 ms with the reads and conversions around it) need not come first. So, once placement
chose the node and before the commit, the create goes out as a provisional one (agent.proto
`CreateVmRequest.provisional`): the node boots it at once but keeps nothing of it until the word that
the claim committed, which `run` sends after the commit. A commit that fails, a placement that tries
another node (its first pick lost a race), or a create that ends any other way before `run` drop it
(`drop`): the call is cancelled and the node removes the VM. A node or a server that dies in between
leaves nothing either (the node removes a VM whose word never came, even after a restart:
`hypervisor/provisional.py`).

Only VMs without NICs go ahead: their ports would be plumbed on the node before the claim is known.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from plasmavmc.core.agents import AgentClient
from plasmavmc.core.context import Core
from plasmavmc.types.image import Image
from plasmavmc.types.vm import HypervisorType, VirtualMachine, VmStatus

Sent = tuple[AgentClient, Any]  # the node's client and the RunVm call holding the create


def goes_ahead(vm: VirtualMachine) -> bool:
    """Whether a RunVm of `vm` sends its create ahead of its claim's commit."""
    return vm.hypervisor == HypervisorType.FIRECRACKER and not vm.spec.network and vm.source_snapshot is None


class Ahead:
    """One create+start's create sent ahead: `placed` is placement's hook, `run` follows the commit."""

    def __init__(self, core: Core, images: list[Image]) -> None:
        self._core = core
        self._images = images
        self._sent: asyncio.Task[Sent] | None = None
        self._dropped = False

    def placed(self, vm: VirtualMachine) -> None:
        """Placement built `vm`'s placed record and is about to commit it: the first time, the create goes
        out; again (the first pick's commit lost its race), the create sent is dropped."""
        if self._sent is None and not self._dropped:
            self._sent = asyncio.create_task(self._send(vm), name=f"run-ahead-{vm.id}")
        else:
            self.drop()

    async def _send(self, vm: VirtualMachine) -> Sent:
        agent = await self._core.agent_for(vm)
        return agent, await agent.run_vm_ahead(vm, self._images)

    async def run(self, early: Callable[[bytes], Awaitable[None]]) -> tuple[VmStatus, AsyncGenerator[bytes]] | None:
        """After the claim's commit (of the placed record the create went with: placement tried no other,
        or `placed` dropped it): the word on the create sent ahead, then RunVm's status and console
        (`AgentClient.run_vm`). None when nothing usable went ahead (dropped, or its send failed): the
        caller runs the VM the usual way."""
        sent, self._sent = self._sent, None
        if sent is None:
            return None
        try:
            agent, call = await sent
        except Exception:
            return None  # the usual way tries again, and reports what fails
        return await agent.run_vm_committed(call, early)

    def drop(self) -> None:
        """The create sent ahead (if any) is removed from its node: its call cancelled once it is out."""
        self._dropped = True
        sent, self._sent = self._sent, None
        if sent is not None:
            _cancel_when_sent(sent)


def _cancel_when_sent(sent: asyncio.Task[Sent]) -> None:
    """Cancel the call `sent` made, once it made it (the send is not cut short halfway: its call would
    be left open, and the node would wait for a word that never comes)."""
    def cancel(task: asyncio.Task[Sent]) -> None:
        if not task.cancelled() and task.exception() is None:
            task.result()[1].cancel()

    with contextlib.suppress(RuntimeError):  # the loop closing
        sent.add_done_callback(cancel)
