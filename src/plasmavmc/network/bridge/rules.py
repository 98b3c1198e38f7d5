"""The nftables ruleset of the bridge provider, rendered whole from the plumbed ports (a pure function).

Two tables, both named `table` (unique per provider instance) and replaced atomically on every change:

* `bridge <table>`: per port, anti-spoofing (source MAC, ARP sender, IPv4 source must be the port's;
  anything not IPv4/ARP is dropped) and the security groups. This kernel has no conntrack in the
  bridge family (CONFIG_NF_CONNTRACK_BRIDGE unset), so return traffic is recognised statelessly: TCP
  segments carrying ACK, ICMP replies/errors, UDP from the gateway's DHCP/DNS ports. Ingress is denied
  unless a rule allows it; egress needs an egress rule (the control plane's default group has one).
  What the host itself sends into a network (DHCP replies, `plasmavmc vm ssh` from the gateway address)
  passes the receiving port's ingress chain too (bridge output hook), so security groups hold for it.
* `inet <table>`: the host side. Guests reach the host only for DHCP/DNS and ping of their gateway
  (never the host's management addresses) and answer connections the host opened (conntrack, inet
  family); routed traffic between our bridges is dropped; a network with egress NAT is masqueraded out
  of any non-bridge interface, replies come back by conntrack.

Every value rendered here was validated by `provider.check_request` (names, MACs, addresses, CIDRs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plasmavmc.types.network import Direction, Network, PortRequest, Protocol, SecurityRule

RETURN_TRAFFIC = (
    "tcp flags & ack == ack",
    "icmp type { echo-reply, destination-unreachable, time-exceeded }",
)


@dataclass(frozen=True)
class NetworkPlumbing:
    network: Network
    bridge: str


def _rule(rule: SecurityRule, verdict: str) -> list[str]:
    """nft statements for one rule, seen from the port (ingress: remote = source)."""
    peer = "saddr" if rule.direction == Direction.INGRESS else "daddr"
    remotes: list[str] = []
    if rule.remote_group:
        if not rule.remote_ips:
            return []  # an empty group matches nothing
        remotes = [f"ip {peer} {{ {', '.join(rule.remote_ips)} }}"]
    elif rule.remote_cidr:
        remotes = [f"ip {peer} {rule.remote_cidr}"]
    match = ["ether type ip", *remotes]
    if rule.protocol in (Protocol.TCP, Protocol.UDP):
        match.append(f"meta l4proto {rule.protocol.value}")
        if rule.port_min:
            ports = str(rule.port_min) if rule.port_max in (0, rule.port_min) else f"{rule.port_min}-{rule.port_max}"
            match.append(f"th dport {ports}")
    elif rule.protocol == Protocol.ICMP:
        match.append("meta l4proto icmp")
    return [" ".join(match) + f" {verdict}"]


def _port_chains(port: PortRequest, gateway: str) -> list[str]:
    """A port's two chains. The egress one ends allowed traffic with `return`, not `accept`: an accept
    would end the whole base chain, and the receiving port's ingress chain would never be consulted."""
    tap, ips = port.tap_device, ", ".join(port.ip_addresses) or "0.0.0.0"
    rules = [r for g in port.security_groups for r in g.rules]
    egress = [
        f"ether saddr != {port.mac_address} drop",
        f"ether type arp arp saddr ether != {port.mac_address} drop",
        f"ether type arp arp saddr ip != {{ {ips}, 0.0.0.0 }} drop",
        "ether type arp return",
        "ether type != ip drop",
        "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp dport 67 return",
        f"ip saddr != {{ {ips} }} drop",
        f"ip daddr {gateway} udp dport {{ 53, 67 }} return",
        *[f"{m} return" for m in RETURN_TRAFFIC],
        *[s for r in rules if r.direction == Direction.EGRESS for s in _rule(r, "return")],
        "drop",
    ]
    ingress = [
        "ether type arp accept",
        "ether type != ip drop",
        *[f"{m} accept" for m in RETURN_TRAFFIC],
        f"ip saddr {gateway} udp sport {{ 53, 67 }} accept",
        *[s for r in rules if r.direction == Direction.INGRESS for s in _rule(r, "accept")],
        "drop",
    ]
    return [_chain(f"out_{tap}", egress), _chain(f"in_{tap}", ingress)]


def _chain(name: str, body: Sequence[str], hook: str = "") -> str:
    lines = [f"  chain {name} {{"] + ([f"    {hook}"] if hook else []) + [f"    {s}" for s in body] + ["  }"]
    return "\n".join(lines)


def bridge_table(table: str, ports: Sequence[PortRequest], tunnels: Sequence[str] = ()) -> str:
    """`tunnels`: VXLAN devices; each node's dnsmasq serves only its own ports, so DHCP never crosses one."""
    dispatch_fwd = [f'iifname "{p.tap_device}" jump out_{p.tap_device}' for p in ports]
    dispatch_fwd += [f'oifname "{p.tap_device}" jump in_{p.tap_device}' for p in ports]
    dispatch_in = [f'iifname "{p.tap_device}" jump out_{p.tap_device}' for p in ports]
    dispatch_in += [f'iifname "{t}" udp dport 67 drop' for t in tunnels]
    dispatch_out = [f'oifname "{t}" udp sport 67 drop' for t in tunnels]
    dispatch_out += [f'oifname "{p.tap_device}" jump in_{p.tap_device}' for p in ports]
    chains = [c for p in ports for c in _port_chains(p, p.network.gateway_ip)]
    chains.append(_chain("forward", dispatch_fwd, "type filter hook forward priority 0; policy accept;"))
    chains.append(_chain("input", dispatch_in, "type filter hook input priority 0; policy accept;"))
    chains.append(_chain("output", dispatch_out, "type filter hook output priority 0; policy accept;"))
    return f"table bridge {table} {{\n" + "\n".join(chains) + "\n}\n"


def inet_table(table: str, nets: Sequence[NetworkPlumbing]) -> str:
    bridges = ", ".join(f'"{n.bridge}"' for n in nets)
    inp, fwd, post = [], [], []
    if nets:
        for n in nets:
            gw = n.network.gateway_ip
            inp.append(f'iifname "{n.bridge}" ip daddr {gw} udp dport {{ 53, 67 }} accept')
            inp.append(f'iifname "{n.bridge}" ip daddr {gw} tcp dport 53 accept')
            inp.append(f'iifname "{n.bridge}" ip daddr {gw} icmp type echo-request accept')
            inp.append(f'iifname "{n.bridge}" udp dport 67 accept')
            fwd.append(f'iifname "{n.bridge}" oifname "{n.bridge}" accept')  # same segment (br_netfilter)
        inp.append(f"iifname {{ {bridges} }} ct state established,related accept")  # the host's own
        inp.append(f"iifname {{ {bridges} }} drop")
        fwd.append(f"oifname {{ {bridges} }} ct state established,related accept")
        for n in nets:
            if n.network.egress_nat:
                fwd.append(f'iifname "{n.bridge}" oifname != {{ {bridges} }} accept')
                post.append(f'ip saddr {n.network.cidr} oifname != "{n.bridge}" masquerade')
        fwd.append(f"iifname {{ {bridges} }} drop")
        fwd.append(f"oifname {{ {bridges} }} drop")
    return (
        f"table inet {table} {{\n"
        + _chain("input", inp, "type filter hook input priority 0; policy accept;") + "\n"
        + _chain("forward", fwd, "type filter hook forward priority 0; policy accept;") + "\n"
        + _chain("postrouting", post, "type nat hook postrouting priority 100; policy accept;") + "\n}\n"
    )


def ruleset(table: str, nets: Sequence[NetworkPlumbing], ports: Sequence[PortRequest],
            tunnels: Sequence[str] = ()) -> str:
    """The whole ruleset as one `nft -f` transaction: (re)create both tables from scratch."""
    return (
        f"table bridge {table}\ndelete table bridge {table}\n"
        f"table inet {table}\ndelete table inet {table}\n"
        + bridge_table(table, ports, tunnels) + inet_table(table, nets)
    )


def teardown(table: str) -> str:
    return f"table bridge {table}\ndelete table bridge {table}\ntable inet {table}\ndelete table inet {table}\n"
