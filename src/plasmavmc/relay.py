"""`Relay`: output chunks passed on in order through a bounded queue — what is `put` first, then one
followed stream to its end — read as they come while a task runs (`meanwhile`), then to the end (`rest`).

RunVm relays a VM's console twice with it: on the node (`agent/run_stream.py`: from the moment the backend
says the console can be followed, ahead of the create+start's handle) and on the control plane
(`core/vms/run.py`: the node's output, ahead of the VM's last commit). The bound (`ahead` chunks) makes a
slow reader slow the source; the relay never holds more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any


class Relay:
    def __init__(self, ahead: int) -> None:
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(ahead)
        self._ended = False  # the end (or the stream's error) was taken from the queue
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
        if not self._closed:
            await self._queue.put(data)

    def follow(self, source: AsyncGenerator[bytes]) -> None:
        """Relay `source` to its end (its error comes out of `rest`, after the output before it). The relay
        closes it (at once when the relay is closed already)."""
        self._source = source
        pump = source.aclose() if self._closed else self._pump(source)
        self._task = asyncio.create_task(pump, name="relay")

    async def _pump(self, source: AsyncGenerator[bytes]) -> None:
        try:
            async for chunk in source:
                await self._queue.put(chunk)
        except Exception as err:  # the reader's stream ends with it (PlasmaError: its own code)
            await self._queue.put(err)
            return
        await self._queue.put(None)

    def _took(self, item: bytes | BaseException | None) -> bytes:
        """`item` of the queue as output (b"" once it ended); its error is kept for `rest`."""
        if isinstance(item, bytes):
            return item
        self._ended = True
        self._failed = item
        return b""

    async def meanwhile(self, task: asyncio.Task[Any]) -> AsyncIterator[bytes]:
        """The output that comes while `task` runs, as it comes."""
        getting: asyncio.Task[bytes | BaseException | None] | None = None
        try:
            while not task.done() and not self._ended:
                getting = getting or asyncio.create_task(self._queue.get())
                await asyncio.wait((task, getting), return_when=asyncio.FIRST_COMPLETED)
                if getting.done():
                    chunk, getting = self._took(getting.result()), None
                    if chunk:
                        yield chunk
        finally:
            if getting is not None:  # not done: cancelled, it took nothing from the queue
                getting.cancel()

    def taken(self) -> bytes:
        """The output already relayed, without waiting."""
        got = []
        while not self._ended and not self._queue.empty():
            got.append(self._took(self._queue.get_nowait()))
        return b"".join(got)

    async def rest(self) -> AsyncIterator[bytes]:
        """The output to the end of the followed stream (raising its error, if it ended on one)."""
        while not self._ended:
            if chunk := self._took(await self._queue.get()):
                yield chunk
        if self._failed is not None:
            raise self._failed

    async def close(self) -> None:
        self._closed = True
        while not self._queue.empty():  # a `put` waiting for room goes on
            self._queue.get_nowait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._source is not None:
            await self._source.aclose()  # the source ends (also when the pump never ran)
