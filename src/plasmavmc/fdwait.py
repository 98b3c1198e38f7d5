"""Awaiting a file descriptor turning readable through the running event loop (`add_reader`): a
pidfd when its process exits, an inotify descriptor when it has events. Shared by the hypervisor
layer (`hypervisor/fswait.py`, `hypervisor/process.py`) and the network layer's daemons, so it sits at
the bottom of the layers.
"""

from __future__ import annotations

import asyncio


async def readable(fd: int, within_s: float | None = None) -> bool:
    """Until `fd` is readable; False when `within_s` passed first."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, within_s)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    return True
