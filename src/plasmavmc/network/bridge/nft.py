"""Runs `nft -f -` with a ruleset on stdin (argv list, no shell); a failure names nft's complaint."""

from __future__ import annotations

import asyncio

from plasmavmc.errors import PlasmaError

NFT = "nft"


class NftFailed(PlasmaError):
    """nft refused a ruleset: a bug in the renderer or a kernel without the needed support."""


async def apply(ruleset: str, within_s: float = 30.0) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            NFT, "-f", "-", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise NftFailed(f"cannot execute {NFT}: {exc}") from exc
    try:
        _, err = await asyncio.wait_for(proc.communicate(ruleset.encode()), within_s)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise NftFailed(f"{NFT} did not finish within {within_s:.0f}s") from exc
    if proc.returncode != 0:
        raise NftFailed(f"{NFT} refused the ruleset: {err.decode(errors='replace').strip()[:2000]}")


async def list_table(family: str, table: str) -> str:
    """`nft list table FAMILY TABLE`, or "" when there is no such table."""
    proc = await asyncio.create_subprocess_exec(
        NFT, "list", "table", family, table, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return out.decode() if proc.returncode == 0 else ""
