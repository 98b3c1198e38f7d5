"""`hypervisor.common.flush_concurrently`: every path a create made is fsynced (files and directories,
one worker thread each), a path gone meanwhile is skipped, and a failure is not swallowed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from plasmavmc.hypervisor.common import flush_concurrently


async def test_every_existing_path_is_fsynced_each_in_a_worker(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.json").write_bytes(b"a")
    (tmp_path / "disk.raw").write_bytes(b"d")
    (tmp_path / "guest").mkdir()
    paths = [tmp_path / "a.json", tmp_path / "disk.raw", tmp_path / "guest", tmp_path, tmp_path / "gone"]
    synced: list[tuple[str, bool]] = []
    real = os.fsync

    def watched(fd: int) -> None:  # the real fsync, recording which file and on which thread
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), threading.current_thread() is threading.main_thread()))
        real(fd)

    monkeypatch.setattr(os, "fsync", watched)
    await flush_concurrently(paths)
    assert sorted(name for name, _ in synced) == sorted(str(p) for p in paths[:4])
    assert not any(on_main for _, on_main in synced)  # never on the event loop's thread


async def test_a_failing_fsync_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.json").write_bytes(b"a")

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output"):
        await flush_concurrently([tmp_path / "a.json", tmp_path])
