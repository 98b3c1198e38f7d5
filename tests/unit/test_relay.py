"""`Relay`: what is put, then a followed stream, relayed in order and once — while a task runs, what is
left without waiting, then to the end (the stream's error after its output); closing it frees a writer
waiting for room and closes the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from plasmavmc.relay import Relay


async def _stream(chunks: list[bytes], closed: list[bool], fail: Exception | None = None) -> AsyncGenerator[bytes]:
    try:
        for chunk in chunks:
            yield chunk
        if fail is not None:
            raise fail
    finally:
        closed.append(True)


async def test_output_comes_once_and_in_order_across_its_three_readings() -> None:
    relay = Relay(4)
    done = asyncio.Event()
    task = asyncio.create_task(done.wait())
    await relay.put(b"a")
    await relay.put(b"b")
    seen = []
    async for chunk in relay.meanwhile(task):
        seen.append(chunk)
        if len(seen) == 2:
            done.set()
    closed: list[bool] = []
    relay.follow(_stream([b"c", b"d", b"e"], closed))
    assert relay.following
    await asyncio.sleep(0)  # the pump's turn (not a synchronisation: `rest` below waits for whatever is left)
    rest = [relay.taken()]
    rest += [chunk async for chunk in relay.rest()]
    assert seen == [b"a", b"b"] and b"".join(rest) == b"cde"
    await relay.close()
    assert closed == [True]


async def test_the_streams_error_comes_after_its_output() -> None:
    relay = Relay(4)
    relay.follow(_stream([b"x"], [], fail=ValueError("node gone")))
    got = []
    with pytest.raises(ValueError, match="node gone"):
        async for chunk in relay.rest():
            got.append(chunk)
    assert got == [b"x"]
    await relay.close()


async def test_closing_frees_a_writer_waiting_for_room_and_later_puts_are_dropped() -> None:
    relay = Relay(1)
    await relay.put(b"fills it")
    waiting = asyncio.create_task(relay.put(b"waits"))
    await asyncio.sleep(0)
    assert not waiting.done()
    await relay.close()
    await asyncio.wait_for(waiting, 5.0)
    await asyncio.wait_for(relay.put(b"dropped"), 5.0)
    late = _stream([b"never read"], [])
    relay.follow(late)  # followed after the close: closed, never read
    async with asyncio.timeout(5.0):
        while late.ag_frame is not None:  # poll-with-deadline: the closing task's turn
            await asyncio.sleep(0)
