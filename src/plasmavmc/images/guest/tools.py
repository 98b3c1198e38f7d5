"""Helpers shared by the guest builder's modules: its error type and running tools (argv only)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class GuestBuildError(Exception):
    """The guest image could not be built (tool failure, unexpected package content, ...)."""


# --------------------------------------------------------------------------- processes


async def run(argv: Sequence[str], *, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    """Run argv (never a shell) with `stdin` as its input, return stdout; GuestBuildError with stderr on
    failure."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise GuestBuildError(f"cannot run {argv[0]!r}: {exc}") from exc
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip()
        raise GuestBuildError(f"{' '.join(argv)} failed with exit {proc.returncode}: {detail}")
    return out
