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


async def test_a_chunk_reaches_a_waiting_reader_in_one_loop_turn() -> None:
    """What is put wakes the reader directly: on a busy loop every turn waits behind everything else
    that is ready (a node finishing a VM's start), so a relay of three turns held the guest's line 1-3 ms."""
    relay = Relay(4)
    never = asyncio.create_task(asyncio.Event().wait())
    seen: list[bytes] = []

    async def read() -> None:
        async for chunk in relay.meanwhile(never):
            seen.append(chunk)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)  # the reader waits
    await relay.put(b"line\n")
    await asyncio.sleep(0)  # one turn
    assert seen == [b"line\n"]
    never.cancel()
    await asyncio.wait_for(reader, 5.0)  # the task's end ends `meanwhile`
    await relay.close()


async def test_every_writer_waiting_for_room_goes_on_as_the_reader_takes() -> None:
    relay = Relay(1)
    await relay.put(b"0")
    writers = [asyncio.create_task(relay.put(str(i).encode())) for i in (1, 2, 3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in writers)
    enough = asyncio.Event()
    task = asyncio.create_task(enough.wait())
    got = []
    async with asyncio.timeout(5.0):
        async for chunk in relay.meanwhile(task):
            got.append(chunk)
            if len(got) == 4:
                enough.set()
        await asyncio.gather(*writers)
    assert got[0] == b"0" and sorted(got) == [b"0", b"1", b"2", b"3"]
    await relay.close()
