"""The providers the `NetworkProvider` conformance suite runs over: the Linux bridge and OVN.

A factory gets a private state dir and returns a `Case`: the provider (names unique to the test) and
how to look at what it installed — its rules as text (nft ruleset; OVN's ACLs and logical ports), the
text an opened TCP port shows there, and what is left of it after everything was deleted — plus `stop`
for the services the case started (OVN's databases and daemons). A missing binary skips, or fails under
CI (tests/binaries.py). The suite runs inside a fresh network namespace (`tests/netns.py`), so a
provider's plumbing never reaches the host.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge import links, nft
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings
from plasmavmc.network.ovn.provider import OvnProvider, OvnSettings
from tests import binaries, ovn

TAP_PREFIX = "pvt"


@dataclass
class Case:
    provider: NetworkProvider
    rules: Callable[[], Awaitable[str]]
    opened: Callable[[int], str]  # how an ingress rule opening TCP port N reads in `rules()`
    leftovers: Callable[[], Awaitable[list[str]]]
    stop: Callable[[], Awaitable[None]]
    ovn: tuple[ovn.OvnCentral, ovn.OvnNode] | None = None  # the OVN case's daemons, for its own checks


def _bridge(state: Path) -> Case:
    binaries.require_now("nft", "dnsmasq")
    provider = BridgeProvider(BridgeSettings(state_dir=state, table=f"pvt{os.getpid()}", prefix=TAP_PREFIX))

    async def rules() -> str:
        return await nft.list_table("bridge", provider.settings.table)

    async def leftovers() -> list[str]:
        return await links.names(TAP_PREFIX) + [str(p) for p in state.glob("net-*")]

    async def stop() -> None:
        await provider.teardown()
        await provider.close()

    return Case(provider, rules, lambda port: f"dport {port}", leftovers, stop)


def _ovn(state: Path) -> Case:
    ovn.require()
    central = ovn.OvnCentral.start(listen=None)
    try:
        node = ovn.OvnNode.start(central, "pvt-ch1")
    except BaseException:
        central.stop()
        raise
    provider = OvnProvider(OvnSettings(state, central.nb_unix, node.ovs_db, prefix="pvt"))

    async def rules() -> str:
        return central.nbctl("list", "ACL") + central.nbctl("list", "Logical_Switch_Port")

    async def leftovers() -> list[str]:
        rows = provider.nb.owned_rows()
        ovs_ports = node.vsctl("list-ports", "br-int").split()
        return await links.names(TAP_PREFIX) + [f"{t}: {r}" for t, r in rows.items()] + ovs_ports

    async def stop() -> None:
        try:
            await provider.teardown()
            await provider.close()
        finally:
            node.stop()
            central.stop()

    return Case(provider, rules, lambda port: f"tcp.dst == {port}", leftovers, stop, (central, node))


PROVIDER_FACTORIES: dict[str, Callable[[Path], Case]] = {"bridge": _bridge, "ovn": _ovn}
