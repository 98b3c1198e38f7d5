"""`plasmavmc network create|list|get|delete`: tenant networks of the current --org/--project."""

from __future__ import annotations

import argparse

from plasmavmc.cli import output as out
from plasmavmc.client import PlasmaClient
from plasmavmc.types.network import Network

COLUMNS = ("ID", "NAME", "CIDR", "GATEWAY", "DHCP", "EGRESS NAT", "VNI")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    net = sub.add_parser("network", help="tenant networks").add_subparsers(dest="command", required=True)
    create = net.add_parser("create", help="create a network")
    create.add_argument("name")
    create.add_argument("--cidr", required=True, help="IPv4 network, /8 to /29, e.g. 10.20.0.0/24")
    create.add_argument("--gateway-ip", dest="gateway_ip", default="",
                        help="the gateway address (default: the first host address)")
    create.add_argument("--no-dhcp", dest="dhcp", action="store_false", help="no DHCP server on this network")
    create.add_argument("--egress-nat", action="store_true", help="let guests reach outside networks (NAT)")
    create.set_defaults(func=network_create)
    net.add_parser("list", help="list the project's networks").set_defaults(func=network_list)
    for name, func, text in (("get", network_get, "show a network"), ("delete", network_delete, "delete a network")):
        p = net.add_parser(name, help=text)
        p.add_argument("network", help="id or name")
        p.set_defaults(func=func)


def _row(n: Network) -> list[str]:
    return [n.id, n.name, n.cidr, n.gateway_ip, "on" if n.dhcp else "off", "on" if n.egress_nat else "off", str(n.vni)]


def _show(args: argparse.Namespace, found: list[Network]) -> int:
    return out.show(args, found if args.command == "list" else found[0], COLUMNS, _row)


async def network_create(client: PlasmaClient, args: argparse.Namespace) -> int:
    made = await client.create_network(args.org, args.project, args.name, args.cidr, gateway=args.gateway_ip,
                                       dhcp=args.dhcp, egress_nat=args.egress_nat)
    return _show(args, [made])


async def network_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, await client.list_networks(args.org, args.project))


async def network_get(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, [await client.get_network(args.org, args.project, args.network)])


async def network_delete(client: PlasmaClient, args: argparse.Namespace) -> int:
    gone = await client.delete_network(args.org, args.project, args.network)
    if args.output == "table":
        out.emit(f"network {out.printable(gone.name)} deleted")
        return 0
    return _show(args, [gone])
