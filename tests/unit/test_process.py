"""hypervisor/process.py with real processes: pidfd waits, the pid-reuse guard, kill deadlines."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from plasmavmc.hypervisor import process
from plasmavmc.hypervisor.process import (
    cpu_seconds,
    is_exiting,
    is_running,
    launch_detached,
    matches,
    open_process,
    read_pidfile,
    rss_bytes,
    run_daemonizing,
)


def sleeper(tmp_path: Path, code: str = "import time; time.sleep(30)") -> tuple[int, str]:
    marker = f"marker-{uuid.uuid4()}"
    pid = launch_detached([sys.executable, "-c", code, marker], cwd=tmp_path, stdout=None,
                          stderr=tmp_path / "stderr.log")
    return pid, marker


async def test_pidfd_wait_and_kill(tmp_path: Path) -> None:
    pid, marker = sleeper(tmp_path)
    assert os.getsid(pid) == pid  # its own session: it survives the agent's
    proc = open_process(pid, marker)
    assert proc is not None
    with proc:
        assert proc.alive() and not await proc.wait(0.2)
        t0 = time.monotonic()
        await proc.kill()
        assert time.monotonic() - t0 < 2.0
        assert not proc.alive() and not is_running(pid)


async def test_wait_wakes_when_the_process_exits_by_itself(tmp_path: Path) -> None:
    pid, marker = sleeper(tmp_path, "import time; time.sleep(0.3)")
    proc = open_process(pid, marker)
    assert proc is not None
    with proc:
        t0 = time.monotonic()
        assert await proc.wait(10.0)
        assert 0.1 < time.monotonic() - t0 < 3.0


async def test_pid_reuse_guard(tmp_path: Path) -> None:
    pid, marker = sleeper(tmp_path)
    try:
        assert matches(pid, marker)
        assert open_process(pid, "some-other-vm-runtime-dir") is None  # same pid, not our process
        assert open_process(os.getpid(), marker) is None
        assert cpu_seconds(pid) is not None and rss_bytes(pid) > 0
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_matched_process_is_known_by_pid_and_start_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once `matches` found the marker in a process's argv it knows that process by pid and start time, and
    reads its argv no more (/proc/PID/cmdline waits on the process's memory lock: up to ~5 ms here while a
    VM builds its memory); any other marker is still read for."""
    pid, marker = sleeper(tmp_path)
    try:
        assert matches(pid, marker)
        read: list[int] = []
        monkeypatch.setattr(process, "cmdline_of", lambda p: read.append(p) or ["unrelated"])
        assert matches(pid, marker) and read == []
        assert not matches(pid, "some-other-vm-runtime-dir") and read == [pid]
    finally:
        os.kill(pid, signal.SIGKILL)


async def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    code = ("import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "pathlib.Path('ignoring').touch(); time.sleep(30)")
    pid, marker = sleeper(tmp_path, code)
    deadline = time.monotonic() + 30
    while not (tmp_path / "ignoring").exists():  # it ignores SIGTERM from here on (a loaded host is slow)
        assert time.monotonic() < deadline, "the child never installed its handler"
        await asyncio.sleep(0.02)  # poll-with-deadline
    proc = open_process(pid, marker)
    assert proc is not None
    with proc:
        t0 = time.monotonic()
        await proc.terminate(0.5)
        assert 0.4 < time.monotonic() - t0 < 3.0 and not proc.alive()


def test_read_pidfile(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    assert read_pidfile(path) is None
    path.write_text("garbage\n")
    assert read_pidfile(path) is None
    path.write_text("1234\n")
    assert read_pidfile(path) == 1234


async def test_run_daemonizing_reports_the_parent(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid(); os.close(2)\n"
        f"    open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(30)\n"
        "else:\n"
        f"    while not os.path.exists({str(pidfile)!r}): time.sleep(0.01)\n"
        "    sys.stderr.write('set up'); sys.exit(3)\n"
    )
    result = await run_daemonizing([sys.executable, "-c", code], cwd=tmp_path, within_s=10)
    assert (result.returncode, result.stderr) == (3, "set up")
    pid = read_pidfile(pidfile)
    assert pid is not None and is_running(pid)
    os.kill(pid, signal.SIGKILL)


def test_an_exiting_process_is_not_polled_as_one_in_exec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process freeing its memory shows an empty cmdline until it turns zombie (~50 ms a GiB here):
    `matches` must not take it for one caught in the middle of exec and sleep-poll it (it slept up to
    100 ms so, on the agent's event loop, whenever a large VM's hypervisor was exiting)."""
    pid, marker = sleeper(tmp_path, "import time; b = bytearray(2 * 1024**3); time.sleep(30)")
    deadline = time.monotonic() + 30
    while (rss_bytes(pid) or 0) < 2 * 1024**3:  # poll-with-deadline: until its memory is in place
        assert time.monotonic() < deadline, "the process never had its 2 GiB"
        time.sleep(0.01)
    assert matches(pid, marker) and not is_exiting(pid)
    slept: list[float] = []
    monkeypatch.setattr(process.time, "sleep", slept.append)
    os.kill(pid, signal.SIGKILL)
    seen_exiting = 0
    while is_running(pid) and time.monotonic() < deadline:
        if is_exiting(pid):
            seen_exiting += 1
            assert not matches(pid, marker)
    monkeypatch.undo()
    assert seen_exiting > 0, "the exit was never caught in progress"
    assert slept == []
