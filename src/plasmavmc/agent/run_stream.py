"""The agent's RunVm stream: a create+start's handle and the VM's serial console in one call, the console
followed from the moment the backend says it can be (`HypervisorBackend.create_started`'s `ready`:
before the boot, where the backend can).

The guest's first output (its first line, often) comes while the node still boots and records the VM —
the hypervisor's answer, the VM's supervision, its status — so the console's output goes out as it
comes, ahead of the handle when it is there first; the handle follows once the create+start answers,
then the rest of the output, every byte once, in order. The create+start hears when the first output has
gone on (`output_sent`): what it does after the boot that can wait waits for that (the backend's
records' flush, `common.after_first_output`). Output is read into a bounded queue (`AHEAD`
chunks): a control plane that reads slowly slows the console's reading, the agent holds no more than
that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Any

from plasmavmc.hypervisor.base import VmHandle
from plasmavmc.relay import Relay
from plasmavmc.v1 import agent_pb2

AHEAD = 16  # console chunks read before the control plane takes them

# the create+start: calls its first argument with the VM's handle once the console can be followed; the
# second is set once the first output has gone on
Created = Callable[[Callable[[VmHandle], None], asyncio.Event], Coroutine[Any, Any, agent_pb2.VmHandle]]
Follow = Callable[[VmHandle], AsyncGenerator[bytes]]  # the VM's console, followed


async def replies(created: Created, follow: Follow) -> AsyncIterator[agent_pb2.RunVmReply]:
    """RunVm's replies: console output as it comes from the moment `created` says it can be followed,
    the handle when `created` answers (its error ends the stream), then the rest of the output until
    the console ends."""
    console = Relay(AHEAD)
    output_sent = asyncio.Event()

    def ready(handle: VmHandle) -> None:
        if not console.following:
            console.follow(follow(handle))

    creating = asyncio.create_task(created(ready, output_sent), name="run-create")
    try:
        async for chunk in console.meanwhile(creating):  # output before the handle goes out at once
            yield agent_pb2.RunVmReply(console=chunk)
            output_sent.set()  # the call asks for the next reply once it has sent this one
        yield agent_pb2.RunVmReply(handle=await creating)
        if not console.following:  # every create+start calls `ready` before it answers
            raise RuntimeError("the create+start answered without the VM's console")
        async for chunk in console.rest():
            yield agent_pb2.RunVmReply(console=chunk)
    finally:
        if not creating.done():
            creating.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await creating
        await console.close()
