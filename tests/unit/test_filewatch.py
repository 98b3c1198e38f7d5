"""`hypervisor/filewatch.Follower`: woken by writes to its file (inotify), not by a sleep interval; one
inotify instance per event loop shared by every follower, closed with the last; polling without inotify."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from plasmavmc.hypervisor import console, filewatch, inotify
from plasmavmc.hypervisor.console import SerialConsole

LONG = 60.0  # a wait this long only ends early when a write wakes it


async def test_a_write_wakes_a_waiting_follower(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.touch()
    follower = filewatch.Follower(path)
    assert follower.watching
    waiter = asyncio.create_task(follower.wait(LONG))
    await asyncio.sleep(0)
    assert not waiter.done()
    with path.open("ab") as f:
        f.write(b"x")
    await asyncio.wait_for(waiter, 5.0)
    follower.close()


async def test_a_write_before_the_wait_is_not_missed(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.touch()
    follower = filewatch.Follower(path)
    with path.open("ab") as f:
        f.write(b"x")
    await asyncio.wait_for(follower.wait(LONG), 5.0)  # the write came first: it returns at once
    waiter = asyncio.create_task(follower.wait(LONG))  # and that wake was used up
    await asyncio.sleep(0.05)
    assert not waiter.done()
    waiter.cancel()
    follower.close()


async def test_followers_share_one_instance_closed_with_the_last(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.touch()
    b.touch()
    first, second, other = filewatch.Follower(a), filewatch.Follower(a), filewatch.Follower(b)
    loop = asyncio.get_running_loop()
    instance = filewatch._instances[loop]
    assert len(instance.followers) == 2  # two files, two watches: the same file's is shared
    waits = [asyncio.create_task(f.wait(LONG)) for f in (first, second, other)]
    await asyncio.sleep(0)
    with a.open("ab") as f:
        f.write(b"x")
    await asyncio.wait_for(asyncio.gather(*waits[:2]), 5.0)
    assert not waits[2].done()  # a write to a wakes only a's followers
    waits[2].cancel()
    for follower in (first, second):
        follower.close()
    assert filewatch._instances[loop] is instance and len(instance.followers) == 1
    other.close()
    assert loop not in filewatch._instances


async def test_the_last_follower_closes_the_instance_off_the_loop(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing an inotify instance waits for the kernel's SRCU grace period (13-16 ms here): it must not
    stop the event loop, so a thread of the loop's executor closes it, once."""
    path = tmp_path / "console.log"
    path.touch()
    follower = filewatch.Follower(path)
    fd = filewatch._instances[asyncio.get_running_loop()].fd
    closed_by: list[int] = []
    real_close = os.close

    def close(n: int) -> None:
        if n == fd:
            closed_by.append(threading.get_ident())
        real_close(n)

    monkeypatch.setattr(os, "close", close)
    follower.close()
    assert asyncio.get_running_loop() not in filewatch._instances
    async with asyncio.timeout(5.0):
        while not closed_by:
            await asyncio.sleep(0.01)  # poll-with-deadline: the executor's thread closes it
    assert len(closed_by) == 1 and closed_by[0] != threading.get_ident()


async def test_a_deleted_file_turns_its_follower_to_polling(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.touch()
    follower = filewatch.Follower(path)
    waiter = asyncio.create_task(follower.wait(LONG))
    await asyncio.sleep(0)
    path.unlink()
    await asyncio.wait_for(waiter, 5.0)
    assert not follower.watching
    await asyncio.wait_for(follower.wait(LONG), 5.0)  # polls: back after filewatch.POLL_S
    follower.close()
    assert asyncio.get_running_loop() not in filewatch._instances


async def test_without_inotify_a_follower_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inotify, "instance", lambda: None)  # fs.inotify.max_user_instances reached
    path = tmp_path / "console.log"
    path.touch()
    follower = filewatch.Follower(path)
    assert not follower.watching
    await asyncio.wait_for(follower.wait(LONG), 5.0)
    follower.close()


async def test_a_console_reader_gets_output_as_it_is_written(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "ALIVE_CHECK_S", LONG)  # only a write can end its wait:
    monkeypatch.setattr(filewatch, "POLL_S", LONG)  # not a poll either
    path = tmp_path / "console.log"
    path.write_bytes(b"history")
    stream = SerialConsole(path, tmp_path / "none.sock", lambda: True)
    assert await stream.read() == b"history"
    reading = asyncio.create_task(stream.read())
    await asyncio.sleep(0)
    with path.open("ab") as f:
        f.write(b"login:")
    assert await asyncio.wait_for(reading, 5.0) == b"login:"
    await stream.close()
    assert asyncio.get_running_loop() not in filewatch._instances


async def test_a_stream_of_writes_is_read_at_most_every_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes that keep coming without a line's end (closer than `SETTLE_S`) are read every `HOLD_S`, not
    once per byte. The two times are scaled up here (the writer, a thread, keeps its pace on a loaded
    host)."""
    monkeypatch.setattr(console, "SETTLE_S", 0.05)
    monkeypatch.setattr(console, "HOLD_S", 0.1)
    path = tmp_path / "console.log"
    path.touch()
    stream = SerialConsole(path, tmp_path / "none.sock", lambda: True)
    writes, reads, got = 400, 0, b""
    loop = asyncio.get_running_loop()

    def byte_by_byte() -> None:  # as a hypervisor's UART output may reach the log: a write per byte
        with path.open("ab", buffering=0) as f:
            for _ in range(writes):
                f.write(b"x")
                time.sleep(0.001)  # the workload's pace, not a synchronisation

    writer = asyncio.create_task(asyncio.to_thread(byte_by_byte))
    began = loop.time()
    while len(got) < writes:
        got += await asyncio.wait_for(stream.read(), 5.0)
        reads += 1
    span = loop.time() - began
    await writer
    await stream.close()
    assert got == b"x" * writes
    assert reads <= span / console.HOLD_S + 2
    assert reads < writes / 20  # not one read per byte


async def _line_by_bytes(path: Path, line: bytes, pace_s: float) -> None:
    def byte_by_byte() -> None:  # the hypervisor's writes, from another thread (it is another process)
        with path.open("ab", buffering=0) as f:
            for byte in line:
                f.write(bytes([byte]))
                time.sleep(pace_s)  # the workload's pace, not a synchronisation

    await asyncio.to_thread(byte_by_byte)


async def test_a_line_written_a_byte_at_a_time_is_read_whole(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A serial port's line reaches the log a byte at a time (~60 us apart under this host's KVM, more
    when the vCPU's thread waits for a CPU): the console reads it whole, in one read. The pace and
    `SETTLE_S` are scaled up here (the writer, a thread, keeps its pace on a loaded host)."""
    monkeypatch.setattr(console, "SETTLE_S", 0.05)
    monkeypatch.setattr(console, "HOLD_S", LONG)
    path = tmp_path / "console.log"
    path.touch()
    stream = SerialConsole(path, tmp_path / "none.sock", lambda: True)
    line = b"PLASMAVMC-PVH-GUEST READY\n"
    writer = asyncio.create_task(_line_by_bytes(path, line, 0.002))
    assert await asyncio.wait_for(stream.read(), 5.0) == line
    await writer
    await stream.close()


async def test_a_whole_line_is_read_without_waiting_for_the_writes_to_pause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output that ends in a line's end goes out at once: a read does not wait for the writes to pause
    (here they would not for a minute), while a line still being written is held (`SETTLE_S`)."""
    monkeypatch.setattr(console, "SETTLE_S", LONG)
    monkeypatch.setattr(console, "HOLD_S", LONG)
    path = tmp_path / "console.log"
    path.touch()
    stream = SerialConsole(path, tmp_path / "none.sock", lambda: True)
    reading = asyncio.create_task(stream.read())
    await asyncio.sleep(0)
    with path.open("ab") as f:
        f.write(b"boot: ok\n")
    assert await asyncio.wait_for(reading, 5.0) == b"boot: ok\n"
    with path.open("ab") as f:
        f.write(b"login:")
    partial = asyncio.create_task(stream.read())
    done, _ = await asyncio.wait({partial}, timeout=0.2)
    assert not done  # a line without its end is held (here for SETTLE_S, a minute)
    partial.cancel()
    await stream.close()


async def test_a_write_wakes_a_waiting_follower_the_turn_after_it_is_seen(tmp_path: Path) -> None:
    """A loop turn sees the write (the instance's `add_reader` callback sets the follower's event), the
    next runs the follower: no task between them, whose turns would each wait behind everything else the
    loop has ready (a node finishing a VM's start). Counted from here: 3 turns (`wait_for`'s task: 5)."""
    path = tmp_path / "console.log"
    path.touch()
    follower = filewatch.Follower(path)
    waiter = asyncio.create_task(follower.wait(LONG))
    await asyncio.sleep(0)  # it waits
    with path.open("ab") as f:
        f.write(b"x")  # the inotify event is queued now: the descriptor is readable at the next poll
    turns = 0
    while not waiter.done() and turns < 10:
        await asyncio.sleep(0)
        turns += 1
    assert waiter.done() and turns <= 3
    follower.close()


async def test_whole_lines_go_out_before_the_line_still_being_written(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """What ends in a line's end is read at once; the line being written after it waits for the next read
    (here its hold would last a minute), so output read once is never read again."""
    monkeypatch.setattr(console, "SETTLE_S", LONG)
    monkeypatch.setattr(console, "HOLD_S", LONG)
    path = tmp_path / "console.log"
    path.write_bytes(b"one\ntw")
    stream = SerialConsole(path, tmp_path / "none.sock", lambda: True)
    assert await asyncio.wait_for(stream.read(), 5.0) == b"one\n"
    with path.open("ab") as f:
        f.write(b"o\n")
    assert await asyncio.wait_for(stream.read(), 5.0) == b"two\n"
    await stream.close()


async def test_a_held_line_goes_out_when_its_end_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line still being written is held until its end comes, and goes out at that write, not at the next
    look at the file: here the writes may pause for a minute (`SETTLE_S`) before a held line goes out."""
    monkeypatch.setattr(console, "SETTLE_S", LONG)
    monkeypatch.setattr(console, "HOLD_S", LONG)
    path = tmp_path / "console.log"
    path.touch()
    stream = SerialConsole(path, tmp_path / "none.sock", lambda: True)
    with path.open("ab") as f:
        f.write(b"PLASMAVMC-PVH")
    reading = asyncio.create_task(stream.read())
    done, _ = await asyncio.wait({reading}, timeout=0.1)
    assert not done  # held: the line has no end yet
    with path.open("ab") as f:
        f.write(b"-GUEST READY\n")
    assert await asyncio.wait_for(reading, 5.0) == b"PLASMAVMC-PVH-GUEST READY\n"
    await stream.close()
