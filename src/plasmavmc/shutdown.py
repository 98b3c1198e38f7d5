"""How the long-running processes (server, agent, simulated fleet) wait to be told to stop."""

from __future__ import annotations

import asyncio
import signal


async def until_terminated() -> None:
    """Return on the first SIGTERM or SIGINT; the caller then shuts down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
