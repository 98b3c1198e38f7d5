"""`RunVm` on the control plane (a spec extension): a create with `start` whose answer streams on with the
VM's serial console, as `GetConsole` with `follow` would, in the same call.

The node's agent is asked for both in one call too (its RunVm): the create+start's answer, then the
console, which the agent sends as soon as it has it. The server reads the console from the moment the
status has come (`lifecycle.provision` hands it to `CreateVm.console`), beside the create's last commit:
the guest's first output is often here before that commit is, and it leaves in the same message as the
VM. A caller who wants the VM and its output pays one round trip from the client, no second lookup,
authorization and agent call after the create, and no reply of its own for the guest's first line.

The stream yields `Started` first (the VM, RUNNING as CreateVm with `start` answers it, and the console's
bytes that came before it was recorded), then the console's bytes in order. The console is read through a
bounded queue (`AHEAD` chunks): a caller that reads slowly slows the node's stream, it does not make the
server hold its output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace

from plasmavmc.core.context import Core
from plasmavmc.core.vms import lifecycle
from plasmavmc.types.vm import VirtualMachine

AHEAD = 16  # console chunks read from the node before the caller takes them


@dataclass(frozen=True)
class Started:
    """RunVm's first item: the VM as recorded, and the console's output that came before it was."""

    vm: VirtualMachine
    console: bytes


class _Console:
    """The node's console of one VM, read by a task into a bounded queue from the moment it is handed over."""

    def __init__(self, stream: AsyncGenerator[bytes]) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(AHEAD)
        self._ended = False  # the end (or the stream's error) was taken from the queue
        self._failed: BaseException | None = None
        self._task = asyncio.create_task(self._pump(), name="run-console")

    async def _pump(self) -> None:
        try:
            async for chunk in self._stream:
                await self._queue.put(chunk)
        except Exception as err:  # the caller's stream ends with it (PlasmaError: its own code)
            await self._queue.put(err)
            return
        await self._queue.put(None)

    def _took(self, item: bytes | BaseException | None) -> bytes:
        """`item` of the queue as output (b"" once it ended); its error is kept for the next `chunks`."""
        if isinstance(item, bytes):
            return item
        self._ended = True
        self._failed = item
        return b""

    def taken(self) -> bytes:
        """The output already read, without waiting."""
        got = []
        while not self._ended and not self._queue.empty():
            got.append(self._took(self._queue.get_nowait()))
        return b"".join(got)

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self._ended:
            if chunk := self._took(await self._queue.get()):
                yield chunk
        if self._failed is not None:
            raise self._failed

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._stream.aclose()  # the node's call ends (also when the pump never ran)


async def run(core: Core, req: lifecycle.CreateVm) -> AsyncIterator[Started | bytes]:
    """Create and start the VM `req` describes, then its console: the VM (with the output so far) first,
    then the rest of its output."""
    console: _Console | None = None

    def handed(stream: AsyncGenerator[bytes]) -> None:
        nonlocal console
        console = _Console(stream)

    try:
        vm = await lifecycle.create(core, replace(req, start=True, console=handed))
        if console is None:  # every create with `start` hands it over before it answers
            raise RuntimeError(f"the create of VM {vm.id} answered without the node's console")
        yield Started(vm, console.taken())
        async for chunk in console.chunks():
            yield chunk
    finally:
        if console is not None:
            await console.close()

