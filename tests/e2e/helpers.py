"""Helpers for end-to-end tests: VM specs from the default guest, console reading with deadlines, a
server's liveness."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable

from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import ConsoleSocket, open_console
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, MemorySpec, VmSpec
from tests.conftest import Cluster
from tests.contract.backends import run

ORG, PROJECT = "org-e2e", "proj-e2e"
GUEST_IMAGE = "plasmavmc-tiny"


def tiny_spec(memory_mib: int = 256, vcpus: int = 1) -> VmSpec:
    return VmSpec(
        cpu=CpuSpec(vcpus=vcpus),
        memory=MemorySpec(size_mib=memory_mib),
        disks=(DiskSpec(id="root", source=DiskSource(image_id=GUEST_IMAGE), size_gib=1),),
    )


async def console_until(client: PlasmaClient, vm: str, pattern: str, count: int = 1, timeout: float = 60) -> str:
    """Follow the VM's serial console until `pattern` (a regex) has appeared `count` times."""
    seen = b""
    regex = re.compile(pattern.encode())
    deadline = time.monotonic() + timeout

    async def follow() -> str:
        nonlocal seen
        async for chunk in client.console(ORG, PROJECT, vm, follow=True):
            seen += chunk
            if len(regex.findall(seen)) >= count:
                return seen.decode(errors="replace")
        raise AssertionError(f"console ended before {pattern!r} x{count}: {seen[-2000:]!r}")

    try:
        return await asyncio.wait_for(follow(), max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        raise AssertionError(f"{pattern!r} x{count} not seen in {timeout}s; console: {seen[-2000:]!r}") from None


def health_ok(http: str) -> bool:
    """Whether the server at `http` (http://host:port of its health port) answers `/health` with 200."""
    try:
        with urllib.request.urlopen(f"{http}/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.1)  # polling the server's state with a deadline


class WsStream:
    """A `ConsoleStream` over a gateway session, so the console helpers of the conformance suite apply."""

    def __init__(self, socket: ConsoleSocket) -> None:
        self.socket = socket
        self._chunks = aiter(socket)

    async def read(self) -> bytes:
        return await anext(self._chunks, b"")

    async def write(self, data: bytes) -> None:
        await self.socket.send(data)

    async def close(self) -> None:
        await self.socket.close()


async def shell_run(cluster: Cluster, vm_id: str, command: str) -> str:
    """`command` run on the guest's shell through the console gateway; its output."""
    shell = WsStream(await open_console(cluster.console, ORG, PROJECT, vm_id))
    try:
        return await run(shell, command)
    finally:
        await shell.close()
