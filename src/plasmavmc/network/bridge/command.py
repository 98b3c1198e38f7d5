"""Runs one program of the bridge provider (nft, a self-daemonizing dnsmasq) to completion: argv list, no
shell, optional stdin, a deadline; returns the exit code and stderr for the caller's error message."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from plasmavmc.errors import PlasmaError


class CommandFailed(PlasmaError):
    """A program could not be run, or did not finish in time."""


async def run(argv: Sequence[str], *, stdin: bytes | None = None, cwd: Path | None = None,
              within_s: float = 30.0) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        raise CommandFailed(f"cannot execute {argv[0]}: {exc}") from exc
    try:
        _, err = await asyncio.wait_for(proc.communicate(stdin), within_s)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise CommandFailed(f"{argv[0]} did not finish within {within_s:.0f}s") from exc
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace").strip()
