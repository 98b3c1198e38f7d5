"""Tenant networks across two nodes through ONE control plane, OVN provider: Geneve between the chassis.

The harness (`tests/two_nodes.py` with `provider="ovn"`; guests: `tests/two_nodes_guests.py`): a hub
namespace with the server and OVN central (NB/SB on the underlay), two node namespaces each with its
agent (`[network] provider = "ovn"`, `overlay_endpoint` = the NB over the underlay, `ovs_endpoint` = its
node's Open_vSwitch DB) and its own OVS (userspace datapath, underlay address on `br-phy`) and
ovn-controller, joined by a veth underlay. The outer test makes the hub and runs the inner tests there.

Inner: `b1` on blue pinned to node-a, `b2` on blue and `r1` on red pinned to node-b, through the API.
The SB holds a Geneve encap per node at its underlay address and each node's OVS a Geneve port to the
other; each guest's logical port is bound on its own node's chassis. Every guest gets its API address
from OVN's native DHCP; b1 and b2 ping each other across the nodes; r1 reaches neither. Deleting the VMs
and the networks leaves no NB row, no VM port on either node's br-int and no tap.
"""

from __future__ import annotations

import os

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.hypervisor.common import tap_name
from plasmavmc.types.network import Network
from plasmavmc.types.vm import VirtualMachine
from tests import binaries, ovn, two_nodes
from tests.conftest import needs_qemu
from tests.two_nodes import INNER, NodeNs, TwoNodes, inner_only
from tests.two_nodes_guests import PLACES, api, check_dhcp_and_ping, cluster, delete_all, nets, vms

pytestmark = [needs_qemu, binaries.require("ip", *ovn.CENTRAL_BINARIES, *ovn.NODE_BINARIES),
              pytest.mark.timeout(1800)]
PROVIDER = "ovn"  # read by the harness's `cluster` fixture
PREFIX = two_nodes.BRIDGE_NAME  # the OVN provider's row prefix and owner mark
__all__ = ["api", "cluster", "nets", "vms"]  # the harness's fixtures


@pytest.mark.skipif(INNER in os.environ, reason="this is the inner run")
def test_two_nodes_ovn_geneve() -> None:
    two_nodes.run_inside_hub(__file__, expect_passed=3, timeout=1700)


def central(cluster: TwoNodes) -> ovn.OvnCentral:
    assert cluster.central is not None
    return cluster.central


def chassis(n: NodeNs) -> ovn.OvnNode:
    assert n.ovn is not None
    return n.ovn


@inner_only
async def test_inner_geneve_between_the_nodes(cluster: TwoNodes, vms: dict[str, VirtualMachine]) -> None:
    encaps = central(cluster).sbctl("--bare", "--columns=type,ip", "list", "Encap").split()
    assert sorted(encaps) == sorted(["geneve", *two_nodes.UNDERLAY[:1], "geneve", *two_nodes.UNDERLAY[1:]])
    a, b = cluster.nodes
    for here, there in ((a, b), (b, a)):
        def tunnel(h: NodeNs = here, t: NodeNs = there) -> bool:
            return f'remote_ip="{t.underlay}"' in chassis(h).vsctl("show")

        ovn.wait_for(f"{here.id}'s Geneve port to {there.id}", tunnel)
        assert "type: geneve" in chassis(here).vsctl("show")
    for name, _, node_id in PLACES:  # each guest's tap is on its own node's br-int, none on the other's
        tap = tap_name(vms[name].id, "nic0")
        for n in cluster.nodes:
            assert (tap in chassis(n).vsctl("list-ports", "br-int").split()) == (n.id == node_id), (tap, n.id)


@inner_only
async def test_inner_dhcp_and_ping_across_nodes_not_across_networks(
        cluster: TwoNodes, api: PlasmaClient, nets: dict[str, Network], vms: dict[str, VirtualMachine]) -> None:
    await check_dhcp_and_ping(cluster, api, nets, vms)


def leftovers(n: NodeNs, taps: list[str]) -> list[str]:
    """VM ports on the node's br-int (not OVN's own `ovn-*` tunnel ports) and taps in its namespace."""
    found = [p for p in chassis(n).vsctl("list-ports", "br-int").split() if not p.startswith("ovn-")]
    return found + [name for name in two_nodes.links(n) if name in taps]


@inner_only
async def test_inner_delete_leaves_nothing_on_either_node(cluster: TwoNodes, api: PlasmaClient,
                                                          nets: dict[str, Network],
                                                          vms: dict[str, VirtualMachine]) -> None:
    taps = [tap_name(vm.id, "nic0") for vm in vms.values()]
    assert central(cluster).owned(PREFIX)  # the checks can fail: before, there are rows and ports
    assert leftovers(cluster.node("node-b"), taps)
    await delete_all(api, nets, vms)
    for n in cluster.nodes:
        assert leftovers(n, taps) == [], n.id
    assert central(cluster).owned(PREFIX) == []
