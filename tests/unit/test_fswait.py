"""`hypervisor/fswait.created`: woken by the file's creation (inotify), not by a sleep interval; fails at
once when the process that should make the file is gone, and at its deadline otherwise."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor import fswait


async def test_wakes_when_a_socket_is_bound(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    waiter = asyncio.create_task(fswait.created(path, 10.0))
    await asyncio.sleep(0)  # the waiter sets its watch first
    assert not waiter.done()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        waited = await asyncio.wait_for(waiter, 5.0)
    assert 0 <= waited < 5.0


async def test_wakes_on_a_rename_into_place(tmp_path: Path) -> None:
    path = tmp_path / "firecracker.pid"
    waiter = asyncio.create_task(fswait.created(path, 10.0))
    await asyncio.sleep(0)
    (tmp_path / ".tmp").write_text("1")
    os.replace(tmp_path / ".tmp", path)
    await asyncio.wait_for(waiter, 5.0)


async def test_existing_file_returns_at_once(tmp_path: Path) -> None:
    (tmp_path / "there").touch()
    assert await fswait.created(tmp_path / "there", 0.5) < 0.5


async def test_dead_process_fails_before_the_deadline(tmp_path: Path) -> None:
    with pytest.raises(HypervisorError, match="exited before it created never"):
        await asyncio.wait_for(fswait.created(tmp_path / "never", 60.0, alive=lambda: False), 5.0)


async def test_deadline(tmp_path: Path) -> None:
    with pytest.raises(HypervisorError, match="not created"):
        await fswait.created(tmp_path / "never", 0.1)
