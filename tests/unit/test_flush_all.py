"""`hypervisor.common.flush_all`: every path a create made is fsynced (files and directories, one thread
each, all at once), a path gone meanwhile is skipped, and a failure is not swallowed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from plasmavmc.hypervisor.common import flush_all


def test_every_existing_path_is_fsynced_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.json").write_bytes(b"a")
    (tmp_path / "disk.raw").write_bytes(b"d")
    (tmp_path / "guest").mkdir()
    paths = [tmp_path / "a.json", tmp_path / "disk.raw", tmp_path / "guest", tmp_path, tmp_path / "gone"]
    synced: list[tuple[str, bool]] = []
    real = os.fsync
    together = threading.Barrier(4, timeout=10)  # passed only when the four fsyncs run at the same time

    def watched(fd: int) -> None:  # the real fsync, recording which file and on which thread
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), threading.current_thread() is threading.main_thread()))
        together.wait()
        real(fd)

    monkeypatch.setattr(os, "fsync", watched)
    flush_all(paths)
    assert sorted(name for name, _ in synced) == sorted(str(p) for p in paths[:4])
    assert not any(on_main for _, on_main in synced)  # never on the caller's thread


def test_a_failing_fsync_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.json").write_bytes(b"a")

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output"):
        flush_all([tmp_path / "a.json", tmp_path])
