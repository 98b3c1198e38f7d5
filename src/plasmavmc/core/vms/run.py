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
bytes; every byte once, in order. The console is read through a bounded queue (`AHEAD` chunks, `Relay`): a caller
that reads slowly slows the node's stream, it does not make the server hold its output. A caller that
ends the stream before the VM came does not end the create: the VM is recorded as the node started it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from plasmavmc.core.context import Core
from plasmavmc.core.vms import lifecycle
from plasmavmc.relay import Relay
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)
AHEAD = 16  # console chunks read from the node before the caller takes them
_FINISHING: set[asyncio.Task[VirtualMachine]] = set()  # creates whose caller went away before the VM came


@dataclass(frozen=True)
class Started:
    """RunVm's VM item: the VM as recorded, and the console's output that came since the last chunk before it."""

    vm: VirtualMachine
    console: bytes


async def run(core: Core, req: lifecycle.CreateVm, opened: Callable[[], Awaitable[None]] | None = None
              ) -> AsyncIterator[Started | bytes]:
    """Create and start the VM `req` describes, then its console: output as it comes, the VM once it is
    recorded (with the output that came in between), then the rest of the output. `opened` is awaited
    while the create runs, before anything is yielded (the API sends the call's headers then: not with
    the first output, which then travels alone, nor ahead of the create)."""
    console = Relay(AHEAD)
    creating = asyncio.create_task(lifecycle.create(core, replace(req, start=True, console=console)))
    try:
        if opened is not None:
            await opened()
        async for chunk in console.meanwhile(creating):
            yield chunk
        vm = await creating
        if not console.following:  # every create with `start` hands it over before it answers
            raise RuntimeError(f"the create of VM {vm.id} answered without the node's console")
        yield Started(vm, console.taken())
        async for chunk in console.rest():
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
