"""`plasmavmc sg create|list|get|delete|rule-add|rule-remove`: security groups of --org/--project.

`rule-add` and `rule-remove` read the group and write its whole rule list back (SetSecurityGroupRules);
the server pushes the change to every port that uses the group before answering.
"""

from __future__ import annotations

import argparse

from plasmavmc.cli import output as out
from plasmavmc.client import PlasmaClient
from plasmavmc.errors import InvalidArgument
from plasmavmc.types.network import Direction, Protocol, SecurityGroup, SecurityRule


def _ports(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PORT or LOW-HIGH, got {text!r}") from None


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sg = sub.add_parser("sg", help="security groups").add_subparsers(dest="command", required=True)
    create = sg.add_parser("create", help="create an empty group (no rules: allows nothing)")
    create.add_argument("name")
    create.set_defaults(func=sg_create)
    sg.add_parser("list", help="list the project's groups").set_defaults(func=sg_list)
    for name, func, text in (("get", sg_get, "show a group's rules"), ("delete", sg_delete, "delete a group")):
        p = sg.add_parser(name, help=text)
        p.add_argument("name")
        p.set_defaults(func=func)
    add = sg.add_parser("rule-add", help="allow traffic")
    add.add_argument("name")
    add.add_argument("--direction", choices=[d.value for d in Direction], default="ingress",
                     help="traffic the rule lets in (ingress) or out (egress)")
    add.add_argument("--protocol", choices=[p.value for p in Protocol], default="tcp", help="IP protocol")
    add.add_argument("--port", type=_ports, metavar="N[-M]", help="tcp/udp port or range (default: all)")
    remote = add.add_mutually_exclusive_group()
    remote.add_argument("--remote-cidr", default="", help="peer addresses (default: anywhere)")
    remote.add_argument("--remote-group", default="", help="peers: the ports in this group")
    add.set_defaults(func=sg_rule_add)
    remove = sg.add_parser("rule-remove", help="remove the N-th rule (as numbered by `sg get`)")
    remove.add_argument("name")
    remove.add_argument("index", type=int)
    remove.set_defaults(func=sg_rule_remove)


def _rule_text(rule: SecurityRule) -> list[str]:
    ports = "" if not rule.port_min else (
        str(rule.port_min) if rule.port_max in (0, rule.port_min) else f"{rule.port_min}-{rule.port_max}")
    remote = f"group {rule.remote_group}" if rule.remote_group else (rule.remote_cidr or "anywhere")
    return [rule.direction.value, rule.protocol.value, ports or "all", remote]


RULE_COLUMNS = ("#", "DIRECTION", "PROTOCOL", "PORTS", "REMOTE")


def _show(args: argparse.Namespace, group: SecurityGroup) -> int:
    """A group in the `-o` format; its table is one row per rule, numbered as `rule-remove` takes them."""
    rows = [[str(i), *_rule_text(r)] for i, r in enumerate(group.rules, 1)]
    text = out.render(args.output, args.columns, group, RULE_COLUMNS, rows)
    if args.output == "table":
        text = f"security group {out.printable(group.name)}\n{text}"
    out.emit(text)
    return 0


async def sg_create(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, await client.create_security_group(args.org, args.project, args.name))


async def sg_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    found = await client.list_security_groups(args.org, args.project)
    return out.show(args, found, ("NAME", "RULES"), lambda g: [g.name, str(len(g.rules))])


async def sg_get(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, await client.get_security_group(args.org, args.project, args.name))


async def sg_delete(client: PlasmaClient, args: argparse.Namespace) -> int:
    gone = await client.delete_security_group(args.org, args.project, args.name)
    if args.output == "table":
        out.emit(f"security group {out.printable(gone.name)} deleted")
        return 0
    return _show(args, gone)


async def sg_rule_add(client: PlasmaClient, args: argparse.Namespace) -> int:
    group = await client.get_security_group(args.org, args.project, args.name)
    low, high = args.port or (0, 0)
    rule = SecurityRule(Direction(args.direction), Protocol(args.protocol), low, high, args.remote_cidr,
                        args.remote_group)
    return _show(args, await client.set_security_group_rules(args.org, args.project, args.name, [*group.rules, rule]))


async def sg_rule_remove(client: PlasmaClient, args: argparse.Namespace) -> int:
    group = await client.get_security_group(args.org, args.project, args.name)
    if not 1 <= args.index <= len(group.rules):
        raise InvalidArgument("index", f"{args.name} has no rule {args.index} (it has {len(group.rules)})")
    rules = [r for i, r in enumerate(group.rules, 1) if i != args.index]
    return _show(args, await client.set_security_group_rules(args.org, args.project, args.name, rules))
