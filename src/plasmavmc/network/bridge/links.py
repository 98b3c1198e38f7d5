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
    Flooding goes to the peers given by `add_flood_peer`; unicast MACs are learned from what arrives."""
    try:
        async with AsyncIPRoute() as ipr:
            index = await _index(ipr, name)
            if index is None:
                await ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_local=local,
                               vxlan_port=port, vxlan_learning=1)
                index = await _index(ipr, name)
                assert index is not None
            master = await _index(ipr, bridge)
            await ipr.link("set", index=index, master=master, state="up")
    except NetlinkError as exc:
        raise NetlinkFailed(f"cannot set up VXLAN {name} (VNI {vni}): {exc}") from exc


async def flood_peers(name: str) -> set[str]:
    """The remote endpoints `name` floods broadcast/unknown traffic to (all-zero MAC FDB entries)."""
    async with AsyncIPRoute() as ipr:
        index = await _index(ipr, name)
        if index is None:
            return set()
        out: set[str] = set()
        async for entry in await ipr.fdb("dump", ifindex=index):
            if entry.get("NDA_LLADDR") == "00:00:00:00:00:00" and entry.get("NDA_DST"):
                out.add(str(entry.get("NDA_DST")))
        return out


async def set_flood_peers(name: str, peers: set[str]) -> None:
    """Make `peers` exactly the flood list of VXLAN device `name` (head-end replication)."""
    have = await flood_peers(name)
    try:
        async with AsyncIPRoute() as ipr:
            index = await _index(ipr, name)
            if index is None:
                return
            for peer in sorted(peers - have):
                await ipr.fdb("append", ifindex=index, lladdr="00:00:00:00:00:00", dst=peer)
            for peer in sorted(have - peers):
                await ipr.fdb("del", ifindex=index, lladdr="00:00:00:00:00:00", dst=peer)
    except NetlinkError as exc:
        raise NetlinkFailed(f"cannot set the flood peers of {name}: {exc}") from exc
