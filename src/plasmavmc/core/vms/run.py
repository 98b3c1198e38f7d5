"""`RunVm` on the control plane (a spec extension): a create with `start` whose answer streams on with the
VM's serial console, as `GetConsole` with `follow` would, in the same call.

The node's agent is asked for both in one call too (its RunVm): the create+start's answer, then the
console. The console's part is read from the moment the status has come, beside the create's last commit
(`lifecycle.provision` hands it to `CreateVm.console`), so the guest's first output is on its way while
the record is written: a caller who wants the VM and its output pays one round trip from the client and
no second lookup, authorization and agent call after the create. The stream yields the VM (RUNNING, as
CreateVm with `start` answers it) first, then the console's bytes in order. The console is read through
a bounded queue (`AHEAD` chunks): a caller that reads slowly slows the node's stream, it does not make the
server hold its output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

from plasmavmc.core.context import Core
from plasmavmc.core.vms import lifecycle
from plasmavmc.types.vm import VirtualMachine

AHEAD = 16  # console chunks read from the node before the caller takes them


class _Console:
    """The node's console of one VM, read by a task into a bounded queue from the moment it is handed over."""

    def __init__(self, stream: AsyncGenerator[bytes]) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(AHEAD)
        self._task = asyncio.create_task(self._pump(), name="run-console")

    async def _pump(self) -> None:
        try:
            async for chunk in self._stream:
                await self._queue.put(chunk)
        except Exception as err:  # the caller's stream ends with it (PlasmaError: its own code)
            await self._queue.put(err)
            return
        await self._queue.put(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (item := await self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._stream.aclose()  # the node's call ends (also when the pump never ran)


async def run(core: Core, req: lifecycle.CreateVm) -> AsyncIterator[VirtualMachine | bytes]:
    """Create and start the VM `req` describes, then its console: the VM first, then its output."""
    console: _Console | None = None

    def handed(stream: AsyncGenerator[bytes]) -> None:
        nonlocal console
        console = _Console(stream)

    try:
        vm = await lifecycle.create(core, replace(req, start=True, console=handed))
        yield vm
        if console is None:  # a create that answered without handing it over (none does today)
            console = _Console(_console(core, vm))
        async for chunk in console.chunks():
            yield chunk
    finally:
        if console is not None:
            await console.close()


async def _console(core: Core, vm: VirtualMachine) -> AsyncGenerator[bytes]:
    agent = await core.agent_on(vm.node_id, vm.id)
    async for chunk in agent.console(vm.id, True):
        yield chunk
