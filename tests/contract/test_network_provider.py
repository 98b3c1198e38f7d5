"""`NetworkProvider` conformance (spec §10.2), parametrised over every provider in `network_providers.py`.

What every provider must do, checked on the real datapath inside a private network namespace: a port
is plumbed (tap up and attached, DHCP serving the told address, security rules installed), described
again by `get_port`, re-plumbed idempotently when something went missing (agent restart), changed by
`update_security_groups`, refused with a named field on bad input (nothing changed), and removed with
nothing left behind (taps, bridges, nft tables, dnsmasq).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.errors import InvalidArgument, NotFound
from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge import links
from plasmavmc.network.bridge.provider import BridgeProvider
from plasmavmc.network.ovn.provider import OvnProvider
from plasmavmc.types.network import (
    Direction,
    Network,
    PortRequest,
    Protocol,
    SecurityGroup,
    SecurityRule,
)
from tests import ovn
from tests.contract.network_providers import PROVIDER_FACTORIES, Case
from tests.netns import inside_netns

NET = Network(id="net-a", cidr="10.93.1.0/24", dhcp=True, vni=101)
DEFAULT_SG = SecurityGroup(id="default", rules=(SecurityRule(Direction.EGRESS),))


def port_req(n: int, network: Network = NET, groups: tuple[SecurityGroup, ...] = (DEFAULT_SG,)) -> PortRequest:
    return PortRequest(
        port_id=f"port-{n}", network=network, mac_address=f"52:54:00:93:01:{n:02x}",
        ip_addresses=(f"10.93.{network.vni - 100}.{n + 10}",), tap_device=f"pvttap{os.getpid() % 1000}x{n}",
        security_groups=groups,
    )


@pytest.fixture
def netns() -> Iterator[str]:
    with inside_netns("np") as name:
        yield name


@pytest.fixture(params=sorted(PROVIDER_FACTORIES))
async def case(request: pytest.FixtureRequest, netns: str, tmp_path: Path) -> AsyncIterator[Case]:
    made = PROVIDER_FACTORIES[request.param](tmp_path / "net")
    yield made
    await made.stop()


@pytest.fixture
def provider(case: Case) -> NetworkProvider:
    return case.provider


async def test_create_get_and_list(case: Case, provider: NetworkProvider) -> None:
    req = port_req(1)
    port = await provider.create_port(req)
    assert (port.id, port.network_id, port.mac_address) == ("port-1", "net-a", req.mac_address)
    assert port.ip_addresses == req.ip_addresses and port.security_groups == ("default",)
    assert port.tap_device == req.tap_device and await links.exists(req.tap_device)
    assert await provider.get_port("port-1") == port
    assert [p.id for p in await provider.ports()] == ["port-1"]
    assert req.mac_address in await case.rules()


async def test_bridge_plumbing_and_dhcp(provider: NetworkProvider, tmp_path: Path) -> None:
    if not isinstance(provider, BridgeProvider):
        pytest.skip("bridge-specific plumbing")
    req = port_req(2)
    await provider.create_port(req)
    bridge = provider.bridge_name(NET)
    assert await links.exists(bridge)
    state = tmp_path / "net" / f"net-{NET.id}"
    assert (state / "hosts").read_text() == f"{req.mac_address},{req.ip_addresses[0]}\n"
    from plasmavmc.network.bridge import dhcp
    assert dhcp.running(state)


async def test_ovn_binding_dhcp_and_heal(case: Case) -> None:
    """OVN: the logical port carries port security and the network's DHCP options, the tap is on br-int
    with its iface-id and ovn-controller binds it; lost OVS port and NB row come back from the records."""
    if case.ovn is None:
        pytest.skip("OVN-specific rows")
    central, node = case.ovn
    provider = case.provider
    assert isinstance(provider, OvnProvider)
    req = port_req(9)
    await provider.create_port(req)
    want = f"{req.mac_address} {req.ip_addresses[0]}"
    assert want in central.nbctl("lsp-get-port-security", "port-9")
    dhcp = central.nbctl("lsp-get-dhcpv4-options", "port-9")
    assert NET.cidr in dhcp, dhcp
    assert "mtu=1442" in central.nbctl("dhcp-options-get-options", dhcp.split()[0]), dhcp
    assert "port-9" in node.vsctl("get", "Interface", req.tap_device, "external_ids:iface-id")
    ovn.wait_for("port-9 bound", lambda: central.nbctl("get", "Logical_Switch_Port", "port-9", "up").strip() == "true")
    chassis = central.sbctl("--bare", "--columns=_uuid", "find", "Chassis", "name=pvt-ch1").strip()
    assert chassis and central.sbctl("--bare", "--columns=chassis", "find", "Port_Binding",
                                     "logical_port=port-9").strip() == chassis
    node.vsctl("del-port", "br-int", req.tap_device)  # lost while the agent was down
    central.nbctl("lsp-del", "port-9")
    again = OvnProvider(provider.settings)
    try:
        await again.restore()  # what the agent does at start
    finally:
        await again.close()
    assert want in central.nbctl("lsp-get-port-security", "port-9")
    assert req.tap_device in node.vsctl("list-ports", "br-int").split()
    ovn.wait_for("port-9 bound again", lambda: central.nbctl("get", "Logical_Switch_Port", "port-9", "up").strip()
                 == "true")


async def test_recreate_is_idempotent_and_heals(provider: NetworkProvider) -> None:
    a, b = port_req(3), port_req(4)
    await provider.create_port(a)
    await provider.create_port(b)
    await links.delete(a.tap_device)  # plumbing lost (e.g. node reboot) while the record stayed
    assert not await links.exists(a.tap_device)
    await provider.create_port(a)
    await provider.create_port(b)  # twice: nothing changes
    assert await links.exists(a.tap_device) and await links.exists(b.tap_device)
    assert sorted(p.id for p in await provider.ports()) == ["port-3", "port-4"]


async def test_update_security_groups(case: Case, provider: NetworkProvider) -> None:
    await provider.create_port(port_req(5))
    assert case.opened(8022) not in await case.rules()
    web = SecurityGroup(id="web", rules=(SecurityRule(Direction.INGRESS, Protocol.TCP, 8022, 8022, "0.0.0.0/0"),))
    await provider.update_security_groups("port-5", [DEFAULT_SG, web])
    assert case.opened(8022) in await case.rules()
    assert (await provider.get_port("port-5")).security_groups == ("default", "web")
    await provider.update_security_groups("port-5", [DEFAULT_SG])
    assert case.opened(8022) not in await case.rules()


@pytest.mark.parametrize(("change", "field"), [
    ({"mac_address": "52:54:00:zz:00:01"}, "mac_address"),
    ({"tap_device": "bad name; rm -rf"}, "tap_device"),
    ({"ip_addresses": ("10.93.2.5",)}, "ip_addresses"),
    ({"ip_addresses": ("not-an-ip",)}, "ip_addresses"),
    ({"network": Network(id="net-a", cidr="10.93.1.7/24")}, "network.cidr"),
    ({"security_groups": (SecurityGroup("x", (SecurityRule(Direction.INGRESS, remote_cidr="1.2.3"),)),)},
     "security_groups.rules.remote_cidr"),
])
async def test_bad_input_names_the_field(provider: NetworkProvider, change: dict[str, object], field: str) -> None:
    import dataclasses
    bad = dataclasses.replace(port_req(6), **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as err:
        await provider.create_port(bad)
    assert err.value.field == field
    assert await provider.ports() == [] and not await links.exists(bad.tap_device)


async def test_unknown_port(provider: NetworkProvider) -> None:
    with pytest.raises(NotFound) as err:
        await provider.get_port("nope")
    assert err.value.field == "port_id"
    await provider.delete_port("nope")  # deleting what is not there is a no-op


async def test_delete_leaves_nothing(case: Case, provider: NetworkProvider) -> None:
    a, b = port_req(7), port_req(8)
    await provider.create_port(a)
    await provider.create_port(b)
    await provider.delete_port("port-7")
    assert not await links.exists(a.tap_device) and await links.exists(b.tap_device)
    assert a.mac_address not in await case.rules() and b.mac_address in await case.rules()
    await provider.delete_port("port-8")
    assert await provider.ports() == []
    # no tap, bridge, dnsmasq state (bridge); no NB row, OVS port (ovn)
    assert await case.leftovers() == []
    assert "pvttap" not in await case.rules() and b.mac_address not in await case.rules()
