"""`Relay`: output chunks passed on in order through a bounded queue — what is `put` first, then one
followed stream to its end — read as they come while a task runs (`meanwhile`), then to the end (`rest`).

RunVm relays a VM's console twice with it: on the node (`agent/run_stream.py`: from the moment the backend
says the console can be followed, ahead of the create+start's handle) and on the control plane
(`core/vms/run.py`: the node's output, ahead of the VM's last commit). The bound (`ahead` chunks) makes a
slow reader slow the source; the relay never holds more.

A chunk reaches its reader one event-loop turn after it came: the reader waits on one future that a
chunk (or the end of the task it reads alongside) resolves, not on a queue's getter raced with the task
through `asyncio.wait` (three turns, each behind whatever else the loop has ready: on a node that is
finishing a VM's start, 1-3 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

_Item = bytes | BaseException | None  # output, the followed stream's error, its end


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Relay:
    def __init__(self, ahead: int) -> None:
        self._ahead = ahead
        self._items: deque[_Item] = deque()
        self._came: asyncio.Future[None] | None = None  # the reader's wait for an item (or its task's end)
        self._rooms: list[asyncio.Future[None]] = []  # the writers' waits for room
        self._ended = False  # the end (or the stream's error) was taken
        self._failed: BaseException | None = None
        self._source: AsyncGenerator[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def following(self) -> bool:
        return self._source is not None

    async def put(self, data: bytes) -> None:
        """Output that came before the followed stream; dropped once closed (nobody reads it then, and
        its writer must not wait for a reader)."""
        await self._push(data)

    async def _push(self, item: _Item) -> None:
        while len(self._items) >= self._ahead and not self._closed:
            room = asyncio.get_running_loop().create_future()
            self._rooms.append(room)
            try:
                await room
            finally:
                self._rooms.remove(room)
        if not self._closed:
            self._items.append(item)
            _wake(self._came)

    def follow(self, source: AsyncGenerator[bytes]) -> None:
        """Relay `source` to its end (its error comes out of `rest`, after the output before it). The relay
        closes it (at once when the relay is closed already)."""
        self._source = source
        pump = source.aclose() if self._closed else self._pump(source)
        self._task = asyncio.create_task(pump, name="relay")

    async def _pump(self, source: AsyncGenerator[bytes]) -> None:
        try:
            async for chunk in source:
                await self._push(chunk)
        except Exception as err:  # the reader's stream ends with it (PlasmaError: its own code)
            await self._push(err)
            return
        await self._push(None)

    def _free(self) -> None:
        for room in self._rooms:
            _wake(room)

    def _take(self) -> bytes:
        """The next item as output (b"" once it ended); its error is kept for `rest`."""
        item = self._items.popleft()
        self._free()
        if isinstance(item, bytes):
            return item
        self._ended = True
        self._failed = item
        return b""

    async def _came_or_woken(self) -> None:
        """Until an item came (or the task read alongside ended: `meanwhile`)."""
        self._came = asyncio.get_running_loop().create_future()
        try:
            await self._came
        finally:
            self._came = None

    def _task_ended(self, _: asyncio.Task[Any]) -> None:
        _wake(self._came)

    async def meanwhile(self, task: asyncio.Task[Any]) -> AsyncIterator[bytes]:
        """The output that comes while `task` runs, as it comes."""
        task.add_done_callback(self._task_ended)
        try:
            while not self._ended:
                if self._items:
                    if chunk := self._take():
                        yield chunk
                elif task.done():
                    return
                else:
                    await self._came_or_woken()
        finally:
            task.remove_done_callback(self._task_ended)

    def taken(self) -> bytes:
        """The output already relayed, without waiting."""
        got = []
        while not self._ended and self._items:
            got.append(self._take())
        return b"".join(got)

    async def rest(self) -> AsyncIterator[bytes]:
        """The output to the end of the followed stream (raising its error, if it ended on one)."""
        while not self._ended:
            if not self._items:
                await self._came_or_woken()
            elif chunk := self._take():
                yield chunk
        if self._failed is not None:
            raise self._failed

    async def close(self) -> None:
        self._closed = True
        self._items.clear()
        self._free()  # a `put` waiting for room goes on (and drops its output)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._source is not None:
            await self._source.aclose()  # the source ends (also when the pump never ran)
