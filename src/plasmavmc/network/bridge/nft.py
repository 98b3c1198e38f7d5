"""Runs `nft -f -` with a ruleset on stdin (argv list, no shell); a failure names nft's complaint."""

from __future__ import annotations

import asyncio

from plasmavmc.errors import PlasmaError
from plasmavmc.network.bridge import command

NFT = "nft"


class NftFailed(PlasmaError):
    """nft refused a ruleset: a bug in the renderer or a kernel without the needed support."""


async def apply(ruleset: str, within_s: float = 30.0) -> None:
    code, err = await command.run([NFT, "-f", "-"], stdin=ruleset.encode(), within_s=within_s)
    if code != 0:
        raise NftFailed(f"{NFT} refused the ruleset: {err[:2000]}")


async def list_table(family: str, table: str) -> str:
    """`nft list table FAMILY TABLE`, or "" when there is no such table."""
    proc = await asyncio.create_subprocess_exec(
        NFT, "list", "table", family, table, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return out.decode() if proc.returncode == 0 else ""
