"""`RunVm` on the control plane (a spec extension): a create with `start` whose answer streams on with the
VM's serial console, as `GetConsole` with `follow` would, in the same call.

The node's agent is asked for both in one call too (its RunVm): the create+start's answer and the
console, which the agent sends from the moment the VM started, as it comes. The guest's first output (its
first line, often) reaches the server while the node still finishes the create and before the create's
last commit: it goes on to the caller at once, ahead of the VM. A caller who wants the VM and its output
pays one round trip from the client, no second lookup, authorization and agent call after the create,
and waits for neither the node's status nor the last commit to see the guest's first line.

The stream yields the console's bytes that come while the create runs, then `Started` (the VM, RUNNING
as CreateVm with `start` answers it, and the bytes that came in between), then the rest of the console's
bytes; every byte once, in order. The console is read through a bounded queue (`AHEAD` chunks): a caller
that reads slowly slows the node's stream, it does not make the server hold its output. A caller that
ends the stream before the VM came does not end the create: the VM is recorded as the node started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace

from plasmavmc.core.context import Core
from plasmavmc.core.vms import lifecycle
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)
AHEAD = 16  # console chunks read from the node before the caller takes them
_FINISHING: set[asyncio.Task[VirtualMachine]] = set()  # creates whose caller went away before the VM came


@dataclass(frozen=True)
class Started:
    """RunVm's first item: the VM as recorded, and the console's output that came before it was."""

    vm: VirtualMachine
    console: bytes


class _Console:
    """The node's console of one VM (a `lifecycle.ConsoleSink`): the output the node sends before the VM's
    status, then the stream handed over with the status, read by a task; both into one bounded queue."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(AHEAD)
        self._ended = False  # the end (or the stream's error) was taken from the queue
        self._failed: BaseException | None = None
        self._stream: AsyncGenerator[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def was_handed(self) -> bool:
        return self._stream is not None

    async def early(self, data: bytes) -> None:
        if not self._closed:  # closed: nobody reads it (and the create must not wait for a reader)
            await self._queue.put(data)

    def handed(self, rest: AsyncGenerator[bytes]) -> None:
        self._stream = rest
        if self._closed:  # the caller went away meanwhile: the node's call ends
            self._task = asyncio.create_task(rest.aclose(), name="run-console-close")
        else:
            self._task = asyncio.create_task(self._pump(rest), name="run-console")

    async def _pump(self, rest: AsyncGenerator[bytes]) -> None:
        try:
            async for chunk in rest:
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

    async def meanwhile(self, creating: asyncio.Task[VirtualMachine]) -> AsyncIterator[bytes]:
        """The output that comes while `creating` runs, as it comes."""
        getting: asyncio.Task[bytes | BaseException | None] | None = None
        try:
            while not creating.done() and not self._ended:
                getting = getting or asyncio.create_task(self._queue.get())
                await asyncio.wait((creating, getting), return_when=asyncio.FIRST_COMPLETED)
                if getting.done():
                    chunk, getting = self._took(getting.result()), None
                    if chunk:
                        yield chunk
        finally:
            if getting is not None:  # not done: cancelled, it took nothing from the queue
                getting.cancel()

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
        self._closed = True
        while not self._queue.empty():  # an `early` waiting for room goes on
            self._queue.get_nowait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._stream is not None:
            await self._stream.aclose()  # the node's call ends (also when the pump never ran)


async def run(core: Core, req: lifecycle.CreateVm) -> AsyncIterator[Started | bytes]:
    """Create and start the VM `req` describes, then its console: output as it comes, the VM once it is
    recorded (with the output that came in between), then the rest of the output."""
    console = _Console()
    creating = asyncio.create_task(lifecycle.create(core, replace(req, start=True, console=console)))
    try:
        async for chunk in console.meanwhile(creating):
            yield chunk
        vm = await creating
        if not console.was_handed:  # every create with `start` hands it over before it answers
            raise RuntimeError(f"the create of VM {vm.id} answered without the node's console")
        yield Started(vm, console.taken())
        async for chunk in console.chunks():
            yield chunk
    finally:
        if not creating.done():  # the caller went away: the create goes on, its console closed
            _FINISHING.add(creating)
            creating.add_done_callback(_finished)
        await console.close()


def _finished(creating: asyncio.Task[VirtualMachine]) -> None:
    """A create whose caller went away ended: its failure is logged (nobody else hears of it)."""
    _FINISHING.discard(creating)
    if not creating.cancelled() and (err := creating.exception()) is not None:
        log.warning("a RunVm create whose caller went away failed: %s", err)
