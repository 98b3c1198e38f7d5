"""`plasmavmc node list|get|cordon|uncordon|drain|vms`: nodes by id or name.

`node drain` follows the drain (the node's `Drain` condition) until it ends or `--wait` runs out: it
exits 0 only when every VM moved; otherwise it exits 1 naming each VM that stayed and why.
`node delete N` removes a node record (NodeService.DeleteNode). `node vms N` lists the VMs of every
project of the `--org` placed on a node (ListVms all_projects with the node filter, server-side).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from plasmavmc.cli import output as out
from plasmavmc.cli.common import Subparsers, confirm, find_node, seconds, shows
from plasmavmc.client import PlasmaClient
from plasmavmc.types.node import Node, NodeCondition
from plasmavmc.types.vm import VirtualMachine

DRAIN = "Drain"
POLL_S = 0.2


def _show(args: argparse.Namespace, nodes: Node | list[Node]) -> int:
    return out.show(args, nodes, out.NODE_COLUMNS, out.node_row)


def _drain_condition(node: Node) -> NodeCondition | None:
    return next((c for c in node.conditions if c.type == DRAIN), None)


async def node_list(client: PlasmaClient, args: argparse.Namespace) -> int:
    nodes = [n for n in await client.list_nodes() if not args.state or n.state.value.upper() in args.state]
    return _show(args, nodes)


async def node_get(client: PlasmaClient, args: argparse.Namespace) -> int:
    node = await find_node(client, args.node)
    if args.output == "table" and not args.columns:
        out.emit(out.table(out.NODE_COLUMNS, [out.node_row(node)]) + "\nconditions: " + out.conditions(node.conditions)
                 + f"\nunderlay: {node.underlay_address or '-'}")
        return 0
    return _show(args, node)


async def node_cordon(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, await client.cordon_node((await find_node(client, args.node)).id))


async def node_uncordon(client: PlasmaClient, args: argparse.Namespace) -> int:
    return _show(args, await client.uncordon_node((await find_node(client, args.node)).id))


async def _follow_drain(client: PlasmaClient, node: Node, wait: float) -> Node:
    """The node once its drain has ended (Complete or Incomplete), or as it is when `wait` runs out."""
    deadline = time.monotonic() + wait
    while True:
        cond = _drain_condition(node)
        if cond is not None and cond.reason in ("Complete", "Incomplete"):
            return node
        if time.monotonic() >= deadline:
            return node
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))  # polling with a deadline
        node = await client.get_node(node.id)


async def node_drain(client: PlasmaClient, args: argparse.Namespace) -> int:
    node = await find_node(client, args.node)
    confirm(args, f"drain node {node.id}: cordon it and move its VMs away?")
    node = await _follow_drain(client, await client.drain_node(node.id, args.allow_disk_loss), args.wait)
    _show(args, node)
    cond = _drain_condition(node)
    if cond is not None and cond.reason == "Complete":
        print(f"node {node.id} drained: {cond.message}", file=sys.stderr)
        return 0
    if cond is not None and cond.reason == "Incomplete":
        print(f"error: node {node.id} not drained: {cond.message}", file=sys.stderr)
        if "allow_disk_loss" in cond.message and not args.allow_disk_loss:
            print("  (pass --allow-disk-loss to move VMs whose disks would be recreated from their images)",
                  file=sys.stderr)
        return 1
    if args.wait == 0:
        print(f"node {node.id}: drain started; follow it with `plasmavmc node get {node.id}`", file=sys.stderr)
        return 0
    print(f"error: TIMEOUT: node {node.id}: drain still running after {args.wait:g}s "
          f"({cond.message if cond else 'no progress reported'}); it goes on on the server", file=sys.stderr)
    return 1


async def node_vms(client: PlasmaClient, args: argparse.Namespace) -> int:
    node = await find_node(client, args.node)
    vms = await client.list_all_vms(args.org, "", all_projects=True, node_ids=[node.id])  # filtered server-side
    return out.show(args, vms, ("PROJECT", *out.VM_COLUMNS), lambda vm: [vm.project_id, *out.vm_row(vm)])


async def node_delete(client: PlasmaClient, args: argparse.Namespace) -> int:
    node = await find_node(client, args.node)
    confirm(args, f"delete node {node.id} from the cluster?")
    orphaned = await client.delete_node(node.id, args.force)
    if args.output in ("json", "yaml"):
        out.emit(out.render(args.output, None, {"node_id": node.id, "deleted": True, "orphaned_vms": orphaned}, (), []))
    else:
        note = f" ({orphaned} VMs were still assigned to it: they are flagged and can be deleted)" if orphaned else ""
        out.emit(f"node {node.id} deleted{note}")
    return 0


def add_parsers(sub: Subparsers) -> None:
    """`plasmavmc node ...`."""
    area = sub.add_parser("node", help="compute nodes")
    shows(area, Node, out.NODE_COLUMNS)
    node = area.add_subparsers(dest="command", required=True)
    p = node.add_parser("list", help="list nodes")
    p.add_argument("--state", action="append", type=str.upper, default=[], metavar="STATE",
                   help="only nodes in this state, e.g. READY (repeatable; client-side)")
    p.set_defaults(func=node_list)
    for action, help_, func in (("get", "show one node and its conditions", node_get),
                                ("cordon", "stop scheduling onto a node", node_cordon),
                                ("uncordon", "make a node schedulable again", node_uncordon),
                                ("drain", "cordon a node and move its VMs away (asks first on a terminal)",
                                 node_drain),
                                ("vms", "list the VMs (of every project of --org) placed on a node", node_vms),
                                ("delete", "remove a NOT_READY node without VMs (its agent stopped for good; asks "
                                           "first on a terminal)", node_delete)):
        p = node.add_parser(action, help=help_)
        p.add_argument("node", metavar="NODE", help="node id or name")
        p.set_defaults(func=func)
    shows(node.choices["vms"], VirtualMachine, ("PROJECT", *out.VM_COLUMNS))
    node.choices["delete"].add_argument(
        "--force", action="store_true",
        help="remove it whatever its state; VMs still on it are flagged and can then be deleted")
    drain = node.choices["drain"]
    drain.add_argument("--allow-disk-loss", action="store_true",
                       help="move VMs although their disks are recreated empty from their images")
    drain.add_argument("--wait", type=seconds, default=600.0, metavar="SECONDS",
                       help="follow the drain at most this long (0: return at once)")
