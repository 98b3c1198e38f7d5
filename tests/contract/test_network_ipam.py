"""IPAM and network records over every `Store` (SQLite and a real etcd): race-free, leak-free.

50 ports created at once on one network get 50 distinct addresses; a /28 hands out its 13 usable
addresses (network, broadcast and gateway excluded) and refuses the rest with NETWORK_FULL; deleting
the ports frees every claim. Bad input names its field and changes nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from plasmavmc.core.networks import ipam, networks, ports
from plasmavmc.errors import AlreadyExists, InvalidArgument, InvalidState, NetworkFull, PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.base import Store


async def _net(store: Store, cidr: str, name: str = "n1") -> networks.Network:
    return await networks.create(store, networks.NetworkRequest("org1", "proj1", name, cidr))


async def test_fifty_parallel_ports_distinct_then_no_leak(store: Store) -> None:
    net = await _net(store, "10.60.0.0/24")
    made = await asyncio.gather(*(ports.create(store, net, vm_id=f"vm{i}") for i in range(50)))
    ips = [r.port.ip_addresses[0] for r in made]
    assert len(set(ips)) == 50
    assert all(ipaddress.IPv4Address(ip) in net.subnet for ip in ips) and net.gateway_ip not in ips
    assert len(await ipam.in_use(store, net.id)) == 50
    await asyncio.gather(*(ports.delete(store, net.id, r.port.id) for r in made))
    assert await ipam.in_use(store, net.id) == {}
    assert await ports.list_ports(store, net.id) == []


async def test_small_network_fills_up_cleanly(store: Store) -> None:
    net = await _net(store, "10.61.0.0/28")
    results = await asyncio.gather(*(ports.create(store, net) for _ in range(20)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, ports.PortRecord)]
    full = [r for r in results if isinstance(r, NetworkFull)]
    assert len(ok) == 13 and len(full) == 7, [type(r).__name__ for r in results]
    assert all(e.field == "network_id" and "no free address" in e.message for e in full)
    assert len({r.port.ip_addresses[0] for r in ok}) == 13
    await ports.delete(store, net.id, ok[0].port.id)
    again = await ports.create(store, net)  # a freed address is handed out again
    assert again.port.ip_addresses == ok[0].port.ip_addresses


async def test_fixed_address_and_conflicts(store: Store) -> None:
    net = await _net(store, "10.62.0.0/24")
    a = await ports.create(store, net, ip="10.62.0.50")
    assert a.port.ip_addresses == ("10.62.0.50",)
    with pytest.raises(AlreadyExists) as err:
        await ports.create(store, net, ip="10.62.0.50")
    assert err.value.field == "ip_address"
    for bad in ("10.62.1.5", "10.62.0.1", "10.62.0.255", "nope"):
        with pytest.raises(InvalidArgument) as bad_err:
            await ports.create(store, net, ip=bad)
        assert bad_err.value.field == "ip_address"
    assert list(await ipam.in_use(store, net.id)) == ["10.62.0.50"]


@pytest.mark.parametrize(("cidr", "gateway", "field"), [
    ("10.63.0.1/24", "", "network.cidr"), ("10.63.0.0/30", "", "network.cidr"), ("fd00::/64", "", "network.cidr"),
    ("10.63.0.0/24", "10.64.0.1", "network.gateway"), ("10.63.0.0/24", "10.63.0.255", "network.gateway"),
])
async def test_bad_network_names_the_field(store: Store, cidr: str, gateway: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        await networks.create(store, networks.NetworkRequest("org1", "proj1", "bad", cidr, gateway))
    assert err.value.field == field
    assert await networks.list_networks(store, "org1", "proj1") == []


async def test_default_network_once_and_delete_rules(store: Store) -> None:
    made = await asyncio.gather(*(networks.ensure_default(store, "org1", "proj1") for _ in range(5)))
    assert len({n.id for n in made}) == 1 and made[0].name == "default"
    with pytest.raises(AlreadyExists):
        await _net(store, "10.65.0.0/24", name="default")
    port = await ports.create(store, made[0])
    with pytest.raises(InvalidState):
        await networks.delete(store, "org1", "proj1", "default")
    await ports.delete(store, made[0].id, port.port.id)
    await networks.delete(store, "org1", "proj1", "default")
    assert await networks.list_networks(store, "org1", "proj1") == []
    assert await store.get(keys.vni(made[0].vni)) is None
    with pytest.raises(PlasmaError) as err:
        await networks.get(store, "org1", "proj1", "default")
    assert err.value.field == "network_id"


async def test_networks_count_in_quota(store: Store) -> None:
    from plasmavmc.core import quotas
    from plasmavmc.errors import QuotaExceeded
    from plasmavmc.types.quota import ResourceLimits

    await quotas.set_limits(store, "org1", "proj1", ResourceLimits(max_networks=2))
    await _net(store, "10.66.0.0/24", "q1")
    await _net(store, "10.66.1.0/24", "q2")
    with pytest.raises(QuotaExceeded) as err:
        await _net(store, "10.66.2.0/24", "q3")
    assert "max_networks" in err.value.message
    assert (await quotas.get(store, "org1", "proj1")).usage.networks == 2
    await networks.delete(store, "org1", "proj1", "q1")
    await _net(store, "10.66.2.0/24", "q3")  # the freed slot is usable again
    assert [n.name for n in await networks.list_networks(store, "org1", "proj1")].count("q3") == 1
