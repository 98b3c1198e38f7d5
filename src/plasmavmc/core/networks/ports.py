"""Ports: a NIC's place on a network — its MAC, its claimed address, its security groups.

`create` claims the address first (`ipam.allocate`), then writes the port record with "must not exist";
if that write fails the address is released again, so a failed create leaks nothing. `delete` removes
the record and then releases the address (a crash between the two leaves a claim whose port is gone;
`ipam.in_use` against the port records finds it).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from plasmavmc.core.networks import ipam
from plasmavmc.errors import InvalidArgument, NotFound
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.records import read
from plasmavmc.types import codec
from plasmavmc.types.network import Network, Port

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@dataclass(frozen=True)
class PortRecord:
    port: Port
    vm_id: str = ""
    nic_id: str = ""


def random_mac() -> str:
    """A locally administered unicast MAC in QEMU's 52:54:00 range."""
    tail = uuid.uuid4().bytes[:3]
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


async def create(store: Store, network: Network, *, vm_id: str = "", nic_id: str = "", mac: str | None = None,
                 ip: str | None = None, security_groups: tuple[str, ...] = (), port_id: str = "") -> PortRecord:
    """A new port; with `port_id` given, creating it again returns the existing one (a retried create)."""
    if mac is not None and not _MAC.fullmatch(mac.lower()):
        raise InvalidArgument("mac_address", f"{mac[:40]!r} is not a MAC address")
    port_id = port_id or str(uuid.uuid4())
    existing = await read(store, PortRecord, keys.port(network.id, port_id))
    if existing is not None:
        return existing.value
    address = await ipam.allocate(store, network, port_id, ip)
    port = Port(id=port_id, network_id=network.id, mac_address=(mac or random_mac()).lower(),
                ip_addresses=(address,), security_groups=security_groups)
    record = PortRecord(port, vm_id, nic_id)
    try:
        await store.put(keys.port(network.id, port_id), codec.dumps(record), expected_revision=0)
    except BaseException:
        await ipam.release(store, network.id, address, port_id)
        raise
    return record


async def get(store: Store, network_id: str, port_id: str) -> PortRecord:
    found = await read(store, PortRecord, keys.port(network_id, port_id))
    if found is None:
        raise NotFound(f"port {port_id!r} not found on network {network_id}", field="port_id")
    return found.value


async def list_ports(store: Store, network_id: str) -> list[PortRecord]:
    return [codec.loads(PortRecord, kv.value) for kv in await store.list_all(keys.ports_in(network_id))]


async def delete(store: Store, network_id: str, port_id: str) -> None:
    """Remove a port and free its addresses; a port already gone is not an error."""
    kv = await store.get(keys.port(network_id, port_id))
    if kv is None:
        return
    record = codec.loads(PortRecord, kv.value)
    await store.delete(kv.key, expected_revision=kv.mod_revision)
    for ip in record.port.ip_addresses:
        await ipam.release(store, network_id, ip, port_id)
