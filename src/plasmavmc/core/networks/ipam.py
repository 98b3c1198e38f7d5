"""IPAM: race-free address claims, one store key per address (`plasmavmc/ipam/<network>/<ip>` → port id).

A claim is `put(expected_revision=0)` ("must not exist"): of N concurrent claims of one address exactly
one wins and the others move on to the next free address. The network, broadcast and gateway addresses
are never handed out. A full network raises `NetworkFull`; a release deletes the claim only if the same
port still holds it (compare-and-swap on its revision), so a late release never frees someone else's.
"""

from __future__ import annotations

import ipaddress
import zlib

from plasmavmc.errors import AlreadyExists, Conflict, InvalidArgument, NetworkFull
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.types.network import Network


def _reserved(network: Network) -> set[str]:
    subnet = network.subnet
    return {str(subnet.network_address), str(subnet.broadcast_address), network.gateway_ip}


async def _claim(store: Store, network: Network, ip: str, port_id: str) -> bool:
    try:
        await store.put(keys.address(network.id, ip), port_id.encode(), expected_revision=0)
    except Conflict:
        return False
    return True


async def allocate(store: Store, network: Network, port_id: str, wanted: str | None = None) -> str:
    """Claim `wanted` (or else a free address) of `network` for `port_id`; return it."""
    if wanted is not None:
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError as exc:
            raise InvalidArgument("ip_address", f"{wanted[:60]!r} is not an IPv4 address") from exc
        if address not in network.subnet or str(address) in _reserved(network):
            raise InvalidArgument("ip_address", f"{address} is not a usable address of {network.cidr}")
        if not await _claim(store, network, str(address), port_id):
            raise AlreadyExists(f"{address} is already in use on network {network.id}", field="ip_address")
        return str(address)
    taken = {kv.key.rsplit("/", 1)[1] for kv in await store.list_all(keys.addresses_in(network.id))}
    taken |= _reserved(network)
    free = [str(h) for h in network.subnet.hosts() if str(h) not in taken]
    # start where this port's hash points, so concurrent allocators rarely race for the same address
    start = zlib.crc32(port_id.encode()) % len(free) if free else 0
    for ip in free[start:] + free[:start]:
        if await _claim(store, network, ip, port_id):
            return ip
    raise NetworkFull(f"network {network.id} ({network.cidr}) has no free address left", field="network_id")


async def release(store: Store, network_id: str, ip: str, port_id: str) -> None:
    """Free `ip` if `port_id` still holds it; anything else (already free, re-claimed) is left alone."""
    kv = await store.get(keys.address(network_id, ip))
    if kv is None or kv.value.decode() != port_id:
        return
    try:
        await store.delete(kv.key, expected_revision=kv.mod_revision)
    except Conflict:
        return


async def in_use(store: Store, network_id: str) -> dict[str, str]:
    """Every claimed address of a network → the port holding it."""
    return {kv.key.rsplit("/", 1)[1]: kv.value.decode() for kv in await store.list_all(keys.addresses_in(network_id))}
