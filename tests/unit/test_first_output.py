"""A RunVm's first output before the create's own work after the boot: the agent's stream sets
`output_sent` once the first console chunk has gone on (the call asked for the next reply), and
`common.after_first_output` waits for it, at most `FIRST_OUTPUT_WAIT`, not at all without it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable

from plasmavmc.agent import run_stream
from plasmavmc.hypervisor import common
from plasmavmc.hypervisor.base import VmHandle
from plasmavmc.types.vm import HypervisorType
from plasmavmc.v1 import agent_pb2

HANDLE = VmHandle(vm_id="00000000-0000-4000-8000-000000000001", backend=HypervisorType.FIRECRACKER,
                  runtime_dir="/nonexistent")


async def test_the_wait_ends_when_the_output_went_on() -> None:
    sent = asyncio.Event()
    waiting = asyncio.create_task(common.after_first_output(sent))
    await asyncio.sleep(0)
    assert not waiting.done()
    sent.set()
    async with asyncio.timeout(common.FIRST_OUTPUT_WAIT / 2):  # well before its bound
        await waiting


async def test_the_wait_is_bounded_and_none_without_a_follower() -> None:
    started = time.monotonic()
    await common.after_first_output(asyncio.Event())  # a silent guest: the bound
    assert time.monotonic() - started >= common.FIRST_OUTPUT_WAIT * 0.9
    started = time.monotonic()
    await common.after_first_output(None)
    assert time.monotonic() - started < common.FIRST_OUTPUT_WAIT


async def test_the_stream_says_when_the_first_output_went_on() -> None:
    steps: list[str] = []
    line = asyncio.Event()

    async def created(ready: Callable[[VmHandle], None], output_sent: asyncio.Event) -> agent_pb2.VmHandle:
        ready(HANDLE)
        line.set()  # the guest writes its line once its console is followed
        await output_sent.wait()
        steps.append("flushed")
        return agent_pb2.VmHandle(vm_id=HANDLE.vm_id)

    async def follow(handle: VmHandle) -> AsyncGenerator[bytes]:
        await line.wait()
        yield b"ready\n"
        await asyncio.Event().wait()  # the console stays open

    replies = aiter(run_stream.replies(created, follow))
    first = await anext(replies)
    assert first.console == b"ready\n"
    for _ in range(20):  # loop turns: the create waits while the reply is on its way (not asked past yet)
        await asyncio.sleep(0)
    assert steps == []
    second = await anext(replies)  # asking for the next reply: the first one went on
    assert second.handle.vm_id == HANDLE.vm_id and steps == ["flushed"]
    await replies.aclose()  # type: ignore[attr-defined]
