"""OVN provider, pure parts: security-group rules as ACLs, row names, settings validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from plasmavmc.errors import InvalidArgument
from plasmavmc.network.ovn import acls, names
from plasmavmc.network.ovn.provider import OvnSettings, check_settings
from plasmavmc.types.network import Direction, Network, Protocol, SecurityGroup, SecurityRule

NET = Network(id="n1", cidr="10.5.0.0/24")


def remote(group: str) -> str:
    return f"pg_{group}"


@pytest.mark.parametrize(("rule", "acl"), [
    (SecurityRule(Direction.EGRESS), ("from-lport", 1002, "inport == @pg && ip4", "allow-related")),
    (SecurityRule(Direction.INGRESS, Protocol.TCP, 22, 22, "0.0.0.0/0"),
     ("to-lport", 1002, "outport == @pg && ip4 && tcp.dst == 22", "allow-related")),
    (SecurityRule(Direction.INGRESS, Protocol.UDP, 1000, 2000, "192.0.2.0/24"),
     ("to-lport", 1002, "outport == @pg && ip4 && ip4.src == 192.0.2.0/24 && udp.dst >= 1000 && udp.dst <= 2000",
      "allow-related")),
    (SecurityRule(Direction.INGRESS, Protocol.ICMP, remote_group="web", remote_ips=("10.5.0.9",)),
     ("to-lport", 1002, "outport == @pg && ip4 && ip4.src == $pg_web_ip4 && icmp4", "allow-related")),
    (SecurityRule(Direction.EGRESS, Protocol.TCP, remote_cidr="203.0.113.0/24"),
     ("from-lport", 1002, "inport == @pg && ip4 && ip4.dst == 203.0.113.0/24 && tcp", "allow-related")),
])
def test_rule_as_acl(rule: SecurityRule, acl: acls.Acl) -> None:
    assert acls.rule_acl("pg", rule, remote) == acl


def test_defaults_deny_both_ways_but_dhcp() -> None:
    got = acls.defaults("all")
    assert ("from-lport", 1000, "inport == @all && ip4", "drop") in got
    assert ("to-lport", 1000, "outport == @all && ip4", "drop") in got
    assert any("udp.dst == 67" in m and a == "allow" for _, _, m, a in got)


def test_group_acls_and_remote_groups() -> None:
    group = SecurityGroup("web", (SecurityRule(Direction.EGRESS),
                                  SecurityRule(Direction.INGRESS, remote_group="default")))
    assert len(acls.group_acls("pg", group, remote)) == 2 and acls.remote_groups(group) == {"default"}


def test_names_are_identifiers_scoped_to_the_network() -> None:
    a = names.port_group("pvm", NET, "web")
    assert a.isidentifier() and a != names.port_group("pvm", Network(id="n2", cidr=NET.cidr), "web")
    assert names.gateway_mac(NET) == names.gateway_mac(Network(id="n1", cidr="10.9.0.0/24"))
    assert int(names.gateway_mac(NET).split(":")[0], 16) & 1 == 0  # unicast


@pytest.mark.parametrize(("change", "field"), [
    ({"nb_endpoint": "http://x:6641"}, "network.overlay_endpoint"),
    ({"ovs_endpoint": "tcp:x"}, "network.ovs_endpoint"),
    ({"prefix": "1bad"}, "network.prefix"),
    ({"integration_bridge": "br int"}, "network.integration_bridge"),
    ({"external_cidr": "198.51.100.0/24"}, "network.external_gateway"),
    ({"external_cidr": "198.51.100.0/33", "external_gateway": "198.51.100.1"}, "network.external_cidr"),
    ({"external_cidr": "198.51.100.0/24", "external_gateway": "192.0.2.1"}, "network.external_gateway"),
])
def test_bad_settings_name_the_field(change: dict[str, str], field: str) -> None:
    import dataclasses
    good = OvnSettings(Path("/tmp/x"), "tcp:127.0.0.1:6641")
    check_settings(good)
    with pytest.raises(InvalidArgument) as err:
        check_settings(dataclasses.replace(good, **change))  # type: ignore[arg-type]
    assert err.value.field == field
