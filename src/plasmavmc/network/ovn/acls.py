"""Security groups as OVN ACLs (pure): what a port group's ACL set must be, as (direction, priority,
match, action) tuples compared with what the northbound database holds.

Default (on the port group of every port): IPv4 in and out dropped, DHCP requests to OVN's native server
allowed. A group's rules allow on top, statefully (`allow-related`: replies pass). Ingress rules match
`outport == @pg`, egress `inport == @pg`; a remote CIDR is `ip4.src/ip4.dst == CIDR`, a remote group is
its port group's address set `$<pg>_ip4` (OVN keeps it in step as ports join and leave).
"""

from __future__ import annotations

from collections.abc import Callable

from plasmavmc.types.network import Direction, Protocol, SecurityGroup, SecurityRule

Acl = tuple[str, int, str, str]  # direction, priority, match, action
DROP_PRIORITY = 1000
ALLOW_PRIORITY = 1002


def defaults(all_pg: str) -> set[Acl]:
    return {
        ("from-lport", DROP_PRIORITY, f"inport == @{all_pg} && ip4", "drop"),
        ("to-lport", DROP_PRIORITY, f"outport == @{all_pg} && ip4", "drop"),
        ("from-lport", ALLOW_PRIORITY, f"inport == @{all_pg} && ip4 && udp.src == 68 && udp.dst == 67", "allow"),
    }


def _protocol(rule: SecurityRule) -> str:
    if rule.protocol == Protocol.ICMP:
        return " && icmp4"
    if rule.protocol in (Protocol.TCP, Protocol.UDP):
        proto = str(rule.protocol)
        if not (rule.port_min or rule.port_max):
            return f" && {proto}"
        low, high = rule.port_min, rule.port_max or rule.port_min
        if low == high:
            return f" && {proto}.dst == {low}"
        return f" && {proto}.dst >= {low} && {proto}.dst <= {high}"
    return ""


def rule_acl(pg: str, rule: SecurityRule, remote_pg: Callable[[str], str]) -> Acl:
    ingress = rule.direction == Direction.INGRESS
    field = "ip4.src" if ingress else "ip4.dst"
    match = f"{'outport' if ingress else 'inport'} == @{pg} && ip4"
    if rule.remote_group:
        match += f" && {field} == ${remote_pg(rule.remote_group)}_ip4"
    elif rule.remote_cidr and rule.remote_cidr not in ("0.0.0.0/0", "0.0.0.0/0.0.0.0"):
        match += f" && {field} == {rule.remote_cidr}"
    return ("to-lport" if ingress else "from-lport", ALLOW_PRIORITY, match + _protocol(rule), "allow-related")


def group_acls(pg: str, group: SecurityGroup, remote_pg: Callable[[str], str]) -> set[Acl]:
    return {rule_acl(pg, r, remote_pg) for r in group.rules}


def remote_groups(group: SecurityGroup) -> set[str]:
    return {r.remote_group for r in group.rules if r.remote_group}
