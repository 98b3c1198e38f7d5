"""Tenant network types shared by the control plane (IPAM, API) and the node's `NetworkProvider`.

A `Network` is what the control plane stores and hands to a provider: its CIDR, gateway, whether it runs
DHCP and egress NAT, and the VXLAN/overlay segment id (`vni`) the control plane assigned. A
`SecurityGroup` is a named list of `SecurityRule`s; a rule whose `remote_group` names a group is resolved
by the control plane into `remote_ips` (the addresses of that group's ports) before a provider sees it,
so a provider never reads the store. Default: ingress denied, egress allowed only where a rule says so
(the control plane's `default` group carries "egress any" and "ingress from default").
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"


class Protocol(StrEnum):
    ANY = "any"
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"


@dataclass(frozen=True)
class Network:
    id: str
    cidr: str  # e.g. 10.20.0.0/24 (IPv4 in this cut)
    gateway: str = ""  # "" = the first host address
    dhcp: bool = True
    egress_nat: bool = False
    vni: int = 0  # overlay segment (VXLAN VNI / OVN tunnel key), assigned by the control plane
    org_id: str = ""
    project_id: str = ""
    name: str = ""

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        net = ipaddress.ip_network(self.cidr, strict=True)
        assert isinstance(net, ipaddress.IPv4Network)
        return net

    @property
    def gateway_ip(self) -> str:
        return self.gateway or str(next(self.subnet.hosts()))


@dataclass(frozen=True)
class SecurityRule:
    direction: Direction
    protocol: Protocol = Protocol.ANY
    port_min: int = 0  # 0..0 = every port (tcp/udp only)
    port_max: int = 0
    remote_cidr: str = ""  # "" and no remote_group = anywhere
    remote_group: str = ""
    remote_ips: tuple[str, ...] = ()  # remote_group resolved by the control plane


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    rules: tuple[SecurityRule, ...] = ()
    name: str = ""
    org_id: str = ""
    project_id: str = ""


@dataclass(frozen=True)
class PortRequest:
    """Everything a provider needs to plumb one NIC: the control plane did IPAM and MAC assignment."""

    port_id: str
    network: Network
    mac_address: str
    ip_addresses: tuple[str, ...]
    tap_device: str
    security_groups: tuple[SecurityGroup, ...] = ()
    vm_id: str = ""


@dataclass(frozen=True)
class Port:
    """Spec §10.2 `Port`."""

    id: str
    network_id: str
    mac_address: str
    ip_addresses: tuple[str, ...]
    security_groups: tuple[str, ...] = ()
    tap_device: str = ""


@dataclass(frozen=True)
class FdbEntry:
    """A port on another node: its MAC and that node's underlay (tunnel endpoint) address."""

    mac_address: str
    remote: str


@dataclass(frozen=True)
class NetworkPeers:
    """One network's overlay forwarding as one node must have it, computed from the store at `revision`."""

    network: Network
    peers: tuple[str, ...] = ()  # underlay addresses of the other nodes with ports on the network
    fdb: tuple[FdbEntry, ...] = ()
    revision: int = 0


def port_id_for(vm_id: str, nic_id: str) -> str:
    """The port id of a VM's NIC: derived, so the control plane and the node agree without a lookup."""
    return str(uuid.uuid5(uuid.UUID(vm_id), f"port/{nic_id}"))
