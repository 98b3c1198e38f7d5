"""Security groups of a project: named rule lists, stored at `secgroups/<org>/<project>/<name>`.

A port names its groups (none: its network's built-in `default`: egress anywhere, ingress from the same
network; the name `default` is reserved for it). Rules allow; everything inbound not allowed is denied,
and outbound needs an egress rule. `resolve` turns names into what a node needs: each rule's
`remote_group` becomes the addresses of the ports on the same network that are in that group.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from plasmavmc import validation
from plasmavmc.core.networks import ports
from plasmavmc.errors import AlreadyExists, Conflict, InvalidArgument, InvalidState, NotFound
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.records import mutate, read
from plasmavmc.types import codec
from plasmavmc.types.network import Direction, Network, Protocol, SecurityGroup, SecurityRule

DEFAULT = "default"


def default_group(network: Network) -> SecurityGroup:
    return SecurityGroup(id=DEFAULT, name=DEFAULT, rules=(
        SecurityRule(Direction.EGRESS),
        SecurityRule(Direction.INGRESS, remote_cidr=network.cidr),
    ))


def check_rule(rule: SecurityRule, field: str) -> SecurityRule:
    if not isinstance(rule.direction, Direction):  # unset on the wire
        raise InvalidArgument(f"{field}.direction", "must be ingress or egress")
    if rule.protocol in (Protocol.TCP, Protocol.UDP):
        if not 0 <= rule.port_min <= 65535 or not 0 <= rule.port_max <= 65535:
            raise InvalidArgument(f"{field}.port_min", "ports are 0..65535")
        if rule.port_max and rule.port_max < rule.port_min:
            raise InvalidArgument(f"{field}.port_max", "must not be below port_min")
    elif rule.port_min or rule.port_max:
        raise InvalidArgument(f"{field}.port_min", "ports apply to tcp and udp only")
    if rule.remote_cidr and rule.remote_group:
        raise InvalidArgument(f"{field}.remote_group", "give a remote CIDR or a remote group, not both")
    if rule.remote_cidr:
        try:
            ipaddress.IPv4Network(rule.remote_cidr, strict=False)
        except ValueError as exc:
            raise InvalidArgument(f"{field}.remote_cidr", f"{rule.remote_cidr[:60]!r} is not an IPv4 CIDR") from exc
    if rule.remote_group:
        validation.name(rule.remote_group, f"{field}.remote_group")
    return SecurityRule(rule.direction, rule.protocol, rule.port_min, rule.port_max or rule.port_min,
                        rule.remote_cidr, rule.remote_group)


def _scope(org_id: str, project_id: str, name: str) -> None:
    validation.name(org_id, "org_id")
    validation.name(project_id, "project_id")
    validation.name(name, "name")


async def create(store: Store, org_id: str, project_id: str, name: str, rules: Sequence[SecurityRule]) -> SecurityGroup:
    _scope(org_id, project_id, name)
    if name == DEFAULT:
        raise InvalidArgument("name", "'default' is the built-in group of every network")
    checked = tuple(check_rule(r, f"rules[{i}]") for i, r in enumerate(rules))
    group = SecurityGroup(id=name, name=name, rules=checked, org_id=org_id, project_id=project_id)
    try:
        await store.put(keys.secgroup(org_id, project_id, name), codec.dumps(group), expected_revision=0)
    except Conflict as exc:
        raise AlreadyExists(f"a security group named {name!r} exists", field="name") from exc
    return group


async def get(store: Store, org_id: str, project_id: str, name: str) -> SecurityGroup:
    _scope(org_id, project_id, name)
    found = await read(store, SecurityGroup, keys.secgroup(org_id, project_id, name))
    if found is None:
        raise NotFound(f"no security group {name!r} in {org_id}/{project_id}", field="name")
    return found.value


async def list_groups(store: Store, org_id: str, project_id: str) -> list[SecurityGroup]:
    return [codec.loads(SecurityGroup, kv.value) for kv in await store.list_all(keys.secgroups_in(org_id, project_id))]


async def set_rules(store: Store, org_id: str, project_id: str, name: str,
                    rules: Sequence[SecurityRule]) -> SecurityGroup:
    _scope(org_id, project_id, name)
    checked = tuple(check_rule(r, f"rules[{i}]") for i, r in enumerate(rules))
    done = await mutate(store, SecurityGroup, keys.secgroup(org_id, project_id, name),
                        lambda g: SecurityGroup(g.id, checked, g.name, g.org_id, g.project_id),
                        missing=lambda: NotFound(f"no security group {name!r}", field="name"))
    return done.value


async def delete(store: Store, org_id: str, project_id: str, name: str, networks: Sequence[Network]) -> None:
    """Delete a group no port uses (INVALID_STATE otherwise)."""
    await get(store, org_id, project_id, name)
    for network in networks:
        if any(name in r.port.security_groups for r in await ports.list_ports(store, network.id)):
            raise InvalidState(f"security group {name!r} is used by a port on network {network.name!r}",
                               field="name")
    await store.delete(keys.secgroup(org_id, project_id, name))


async def resolve(store: Store, network: Network, names: Sequence[str]) -> tuple[SecurityGroup, ...]:
    """The groups a port on `network` is in, with every remote group's member addresses filled in."""
    if not names:
        return (default_group(network),)
    members: dict[str, tuple[str, ...]] = {}
    records = await ports.list_ports(store, network.id)

    def in_group(group: str) -> tuple[str, ...]:
        if group not in members:
            members[group] = tuple(ip for r in records if group in (r.port.security_groups or (DEFAULT,))
                                   for ip in r.port.ip_addresses)
        return members[group]

    out = []
    for name in names:
        group = default_group(network) if name == DEFAULT else \
            await get(store, network.org_id, network.project_id, name)
        rules = tuple(SecurityRule(r.direction, r.protocol, r.port_min, r.port_max, r.remote_cidr, r.remote_group,
                                   in_group(r.remote_group) if r.remote_group else ()) for r in group.rules)
        out.append(SecurityGroup(group.id, rules, group.name, group.org_id, group.project_id))
    return tuple(out)
