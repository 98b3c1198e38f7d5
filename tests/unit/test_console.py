"""hypervisor/console.py over a real file and a real unix socket (no hypervisor needed)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from plasmavmc.hypervisor.console import SerialConsole, bound_log


async def test_history_then_follow_then_eof(tmp_path: Path) -> None:
    log_path = tmp_path / "console.log"
    log_path.write_bytes(b"old" * 100 + b"RECENT")
    alive = True
    stream = SerialConsole(log_path, tmp_path / "none.sock", lambda: alive, history_bytes=10)
    assert await stream.read() == b"doldRECENT"  # only the retained tail is replayed
    with log_path.open("ab") as f:
        f.write(b"more")
    assert await asyncio.wait_for(stream.read(), 2) == b"more"
    alive = False
    assert await asyncio.wait_for(stream.read(), 2) == b""
    await stream.close()


async def test_write_goes_to_the_socket(tmp_path: Path) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"echo from the hypervisor" * 1000)  # must be drained, never block the server
        received.put_nowait(await reader.readexactly(5))
        writer.close()

    sock = tmp_path / "console.sock"
    server = await asyncio.start_unix_server(serve, path=str(sock))
    (tmp_path / "console.log").touch()
    stream = SerialConsole(tmp_path / "console.log", sock, lambda: True)
    await stream.write(b"ls\n\x03\x04")
    assert await asyncio.wait_for(received.get(), 2) == b"ls\n\x03\x04"
    await stream.close()
    server.close()
    await server.wait_closed()


def test_bound_log_punches_the_head_keeping_offsets(tmp_path: Path) -> None:
    log_path = tmp_path / "console.log"
    data = os.urandom(4 * 1024 * 1024)
    log_path.write_bytes(data)
    bound_log(log_path, max_bytes=1024 * 1024, keep_bytes=256 * 1024)
    st = log_path.stat()
    assert st.st_size == len(data)  # offsets of readers and of the appending writer are unchanged
    assert st.st_blocks * 512 <= 300 * 1024  # but the disk use is bounded
    assert log_path.read_bytes()[-256 * 1024 :] == data[-256 * 1024 :]
