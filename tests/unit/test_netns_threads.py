"""The suite's worker threads: one started while the loop's thread is inside a test namespace still works
on the host (tests/netns.py), so a later `to_thread` can reach the host's loopback."""

from __future__ import annotations

import asyncio
import os

from tests.netns import host_executor, inside_netns


def _namespace() -> str:
    return os.readlink("/proc/thread-self/ns/net")


async def test_a_worker_started_inside_a_test_namespace_runs_on_the_host() -> None:
    host = _namespace()
    loop = asyncio.get_running_loop()
    with inside_netns("thr"):
        inside = _namespace()
        started = await asyncio.gather(*(loop.run_in_executor(None, _namespace) for _ in range(64)))
    assert inside != host
    assert set(started) == {host}
    assert set(await asyncio.gather(*(asyncio.to_thread(_namespace) for _ in range(64)))) == {host}


async def test_a_fresh_host_executor_started_inside_a_namespace_runs_on_the_host() -> None:
    host, loop = _namespace(), asyncio.get_running_loop()
    with host_executor() as pool, inside_netns("thr"):
        started = await asyncio.gather(*(loop.run_in_executor(pool, _namespace) for _ in range(16)))
    assert set(started) == {host}
