"""The agent's RunVm stream: a create+start's handle and the VM's serial console in one call, the console
followed from the moment the backend says it can be (`HypervisorBackend.create_started`'s `ready`:
before the boot, where the backend can).

The guest's first output (its first line, often) comes while the node still boots and records the VM —
the hypervisor's answer, the VM's supervision, its status — so the console's output goes out as it
comes, ahead of the handle when it is there first; the handle follows once the create+start answers,
then the rest of the output, every byte once, in order. Output is read into a bounded queue (`AHEAD`
chunks): a control plane that reads slowly slows the console's reading, the agent holds no more than
that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from plasmavmc.hypervisor.base import VmHandle
from plasmavmc.v1 import agent_pb2

AHEAD = 16  # console chunks read before the control plane takes them

# the create+start, which calls its argument with the VM's handle once the console can be followed
Created = Callable[[Callable[[VmHandle], None]], Coroutine[Any, Any, agent_pb2.VmHandle]]
Follow = Callable[[VmHandle], AsyncIterator[bytes]]  # the VM's console, followed


async def replies(created: Created, follow: Follow) -> AsyncIterator[agent_pb2.RunVmReply]:
    """RunVm's replies: console output as it comes from the moment `created` says it can be followed,
    the handle when `created` answers (its error ends the stream), then the rest of the output until
    the console ends."""
    output: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(AHEAD)
    following: list[asyncio.Task[None]] = []

    async def pump(handle: VmHandle) -> None:
        try:
            async for data in follow(handle):
                await output.put(data)
        except Exception as err:  # the stream ends with it, after the handle
            await output.put(err)
            return
        await output.put(None)

    def ready(handle: VmHandle) -> None:
        if not following:
            following.append(asyncio.create_task(pump(handle), name="run-console"))

    creating = asyncio.create_task(created(ready), name="run-create")
    taking: asyncio.Task[bytes | BaseException | None] | None = None
    try:
        while not creating.done():  # output that comes before the handle goes out at once
            taking = taking or asyncio.create_task(output.get())
            await asyncio.wait((creating, taking), return_when=asyncio.FIRST_COMPLETED)
            if taking.done():
                item, taking = taking.result(), None
                if isinstance(item, bytes):
                    yield agent_pb2.RunVmReply(console=item)
                else:  # the console ended (or failed) before the handle: that comes after it
                    await output.put(item)
                    await creating
        yield agent_pb2.RunVmReply(handle=creating.result())
        if not following:  # every create+start calls `ready` before it answers
            raise RuntimeError("the create+start answered without the VM's console")
        while True:
            item = await (taking or output.get())
            taking = None
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield agent_pb2.RunVmReply(console=item)
    finally:
        for task in (creating, taking, *following):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
