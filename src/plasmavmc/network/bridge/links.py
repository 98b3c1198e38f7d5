"""Netlink plumbing for the bridge provider (pyroute2, no `ip` strings): bridges, taps, addresses.

Every call opens its netlink socket in the calling thread's network namespace, on the event loop (no
executor threads: a thread created before a test entered its namespace would act in the wrong one).
Each function is idempotent so that re-plumbing after an agent restart only adds what is missing.
"""

from __future__ import annotations

import errno

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from plasmavmc.errors import PlasmaError

NUD_NOARP, NUD_PERMANENT, NTF_SELF = 0x40, 0x80, 0x02  # linux/neighbour.h
ZERO_MAC = "00:00:00:00:00:00"  # a VXLAN FDB entry for this MAC is a flood (head-end replication) target


class NetlinkFailed(PlasmaError):
    """A netlink request failed (reported as the provider's internal error, with the device named)."""


async def _index(ipr: AsyncIPRoute, name: str) -> int | None:
    found = await ipr.link_lookup(ifname=name)
    return found[0] if found else None


async def exists(name: str) -> bool:
    async with AsyncIPRoute() as ipr:
        return await _index(ipr, name) is not None


async def names(prefix: str) -> list[str]:
    """Names of every link starting with `prefix`."""
    async with AsyncIPRoute() as ipr:
        out = [str(link.get("ifname")) async for link in await ipr.link("dump")]
    return [n for n in out if n.startswith(prefix)]


async def ensure_bridge(name: str, address: str, prefixlen: int) -> None:
    """A bridge `name`, up, holding `address/prefixlen` (the network's gateway)."""
    try:
        async with AsyncIPRoute() as ipr:
            index = await _index(ipr, name)
            if index is None:
                await ipr.link("add", ifname=name, kind="bridge")
                index = await _index(ipr, name)
                assert index is not None
            have = [a.get("address") async for a in await ipr.addr("dump", index=index)]
            if address not in have:
                await ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
            await ipr.link("set", index=index, state="up")
    except NetlinkError as exc:
        raise NetlinkFailed(f"cannot set up bridge {name}: {exc}") from exc


async def ensure_tap(name: str, bridge: str | None) -> None:
    """A persistent tap `name` (root-owned; the hypervisor opens it by name), up, enslaved to `bridge`
    (None: on no Linux bridge — released from one if it was — e.g. for OVN, which adds it to its own
    switch)."""
    try:
        async with AsyncIPRoute() as ipr:
            index = await _index(ipr, name)
            if index is None:
                await ipr.link("add", ifname=name, kind="tuntap", mode="tap")
                index = await _index(ipr, name)
                assert index is not None
            if bridge is None:
                await ipr.link("set", index=index, master=0, state="up")
            else:
                await ipr.link("set", index=index, master=await _index(ipr, bridge), state="up")
    except NetlinkError as exc:
        raise NetlinkFailed(f"cannot set up tap {name} on {bridge or 'no bridge'}: {exc}") from exc


async def delete(name: str) -> None:
    """Remove link `name`; a link already gone is not an error."""
    try:
        async with AsyncIPRoute() as ipr:
            index = await _index(ipr, name)
            if index is not None:
                await ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise NetlinkFailed(f"cannot delete {name}: {exc}") from exc


async def ensure_vxlan(name: str, vni: int, local: str, port: int, bridge: str) -> None:
    """A VXLAN device `name` (segment `vni`, sourced from the underlay address `local`), up, on `bridge`.
    Flooding goes to the peers of `set_flood_peers`, known MACs to their node (`set_fdb`); other unicast
    MACs are learned from what arrives. A device sourced from another address (the node's underlay address
    changed) is made again."""
    try:
        async with AsyncIPRoute() as ipr:
            index = await _index(ipr, name)
            if index is not None and await _vxlan_local(ipr, index) != local:
                await ipr.link("del", index=index)  # made before the node's underlay address changed
                index = None
            if index is None:
                await ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_local=local,
                               vxlan_port=port, vxlan_learning=1)
                index = await _index(ipr, name)
                assert index is not None
            master = await _index(ipr, bridge)
            await ipr.link("set", index=index, master=master, state="up")
    except NetlinkError as exc:
        raise NetlinkFailed(f"cannot set up VXLAN {name} (VNI {vni}): {exc}") from exc


async def _vxlan_local(ipr: AsyncIPRoute, index: int) -> str:
    link = (await ipr.link("get", index=index))[0]
    return str(link.get(("linkinfo", "data", "vxlan_local")) or "")


async def vxlan_local(name: str) -> str:
    """The underlay address VXLAN device `name` sends from ("" if there is no such device)."""
    async with AsyncIPRoute() as ipr:
        index = await _index(ipr, name)
        return "" if index is None else await _vxlan_local(ipr, index)


async def _fdb(name: str) -> list[tuple[str, str, int]]:
    """(MAC, remote, NUD state) of every FDB entry of VXLAN device `name` that has a remote."""
    async with AsyncIPRoute() as ipr:
        index = await _index(ipr, name)
        if index is None:
            return []
        entries = [e async for e in await ipr.fdb("dump", ifindex=index)]
    return [(str(e.get("NDA_LLADDR")), str(e.get("NDA_DST")), int(e["state"])) for e in entries
            if e.get("NDA_LLADDR") and e.get("NDA_DST")]


async def flood_peers(name: str) -> set[str]:
    """The remote endpoints `name` floods broadcast/unknown traffic to (all-zero MAC FDB entries)."""
    return {dst for mac, dst, _ in await _fdb(name) if mac == ZERO_MAC}


async def set_flood_peers(name: str, peers: set[str]) -> None:
    """Make `peers` exactly the flood list of VXLAN device `name` (head-end replication)."""
    have = await flood_peers(name)
    try:
        async with AsyncIPRoute() as ipr:
            index = await _index(ipr, name)
            if index is None:
                return
            for peer in sorted(peers - have):
                await ipr.fdb("append", ifindex=index, lladdr=ZERO_MAC, dst=peer)
            for peer in sorted(have - peers):
                await ipr.fdb("del", ifindex=index, lladdr=ZERO_MAC, dst=peer)
    except NetlinkError as exc:
        raise NetlinkFailed(f"cannot set the flood peers of {name}: {exc}") from exc


async def static_fdb(name: str) -> dict[str, str]:
    """The unicast MACs with a static (permanent) FDB entry on VXLAN device `name`, and their remotes."""
    return {mac: dst for mac, dst, state in await _fdb(name) if mac != ZERO_MAC and state & NUD_PERMANENT}


async def set_fdb(name: str, entries: dict[str, str]) -> None:
    """Make `entries` (MAC -> remote underlay address) exactly the static unicast FDB of VXLAN device
    `name`; learned entries are left to age out."""
    have = await static_fdb(name)
    try:
        async with AsyncIPRoute() as ipr:
            index = await _index(ipr, name)
            if index is None:
                return
            for mac, dst in sorted(entries.items()):
                if have.get(mac) != dst:
                    await ipr.fdb("replace", ifindex=index, lladdr=mac, dst=dst, state=NUD_PERMANENT | NUD_NOARP,
                                  flags=NTF_SELF)
            for mac, dst in sorted(have.items()):
                if mac not in entries:
                    await ipr.fdb("del", ifindex=index, lladdr=mac, dst=dst)
    except NetlinkError as exc:
        raise NetlinkFailed(f"cannot set the forwarding entries of {name}: {exc}") from exc
