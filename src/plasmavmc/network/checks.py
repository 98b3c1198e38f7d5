"""Validation of what reaches a provider (`PortRequest`, security groups, peers), shared by every provider.

Everything that ends up in a link name, an nftables ruleset, dnsmasq's argv or an OVN row/match is
checked here first, so a bad value is refused with INVALID_ARGUMENT naming the field before anything
changes on the node.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from plasmavmc.errors import InvalidArgument
from plasmavmc.types.network import PortRequest, SecurityGroup

IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def check_ip(value: str, field: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise InvalidArgument(field, f"{value[:60]!r} is not an IPv4 address") from exc


def check_request(req: PortRequest) -> None:
    """Ids, tap name, MAC, network CIDR/gateway, addresses (inside the network) and security groups."""
    if not ID.fullmatch(req.port_id) or not ID.fullmatch(req.network.id):
        raise InvalidArgument("port_id", "port and network ids must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    if not IFNAME.fullmatch(req.tap_device):
        raise InvalidArgument("tap_device", f"{req.tap_device[:40]!r} is not an interface name")
    if not MAC.fullmatch(req.mac_address):
        raise InvalidArgument("mac_address", f"{req.mac_address[:40]!r} is not a lower-case MAC address")
    try:
        subnet = req.network.subnet
    except (ValueError, AssertionError) as exc:
        raise InvalidArgument("network.cidr", f"{req.network.cidr[:60]!r} is not an IPv4 network") from exc
    check_ip(req.network.gateway_ip, "network.gateway")
    for ip in req.ip_addresses:
        check_ip(ip, "ip_addresses")
        if ipaddress.IPv4Address(ip) not in subnet:
            raise InvalidArgument("ip_addresses", f"{ip} is not in {subnet}")
    check_groups(req.security_groups)


def check_groups(groups: Sequence[SecurityGroup]) -> None:
    for group in groups:
        if not ID.fullmatch(group.id):
            raise InvalidArgument("security_groups.id", "group ids must match [A-Za-z0-9][A-Za-z0-9_.-]*")
        for rule in group.rules:
            if rule.remote_cidr:
                try:
                    ipaddress.IPv4Network(rule.remote_cidr, strict=False)
                except ValueError as exc:
                    raise InvalidArgument("security_groups.rules.remote_cidr", str(exc)) from exc
            if rule.remote_group and not ID.fullmatch(rule.remote_group):
                raise InvalidArgument("security_groups.rules.remote_group", "not a group id")
            for ip in rule.remote_ips:
                check_ip(ip, "security_groups.rules.remote_ips")
            if not (0 <= rule.port_min <= 65535 and 0 <= rule.port_max <= 65535):
                raise InvalidArgument("security_groups.rules.port_min", "ports are 0..65535")
