"""Overlay peers and remote-group membership from the store (core/networks/peers.py, refresh.py), on the
in-process core harness: real Core over SQLite, the node agents are in-memory fakes recording what they
are told (nothing here claims a packet flowed: tests/e2e/test_network_two_nodes.py does that).

Two nodes with underlay addresses; VMs pinned to each by node selector. Each node carrying a network is
told the other's address and the MACs of the ports there; a VM leaving takes its MAC (and, when it was
the last there, its node) out of the other's view; a node restart is told everything again; a port
joining or leaving a group re-sends the rules of the ports naming that group as a remote group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plasmavmc import validation_reports
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.networks import groups, networks, peers
from plasmavmc.core.nodes import drain, removal
from plasmavmc.core.vms import lifecycle
from plasmavmc.errors import InvalidArgument
from plasmavmc.types.network import Direction, FdbEntry, Network, NetworkPeers, Protocol, SecurityRule
from plasmavmc.types.node import Node
from plasmavmc.types.vm import HypervisorType, NetworkSpec, PlacementSpec, VirtualMachine
from plasmavmc.v1 import agent_pb2
from tests.core_harness import IMAGE, FakeAgent, FakeAgentPool, add_image, add_node, make_core
from tests.unit.test_core_harness import SPEC

ORG, PROJ = "org-p", "proj-p"
UNDERLAY = {"node-a": "192.0.2.1", "node-b": "192.0.2.2"}


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    c = await make_core(tmp_path)
    for node, addr in UNDERLAY.items():
        await add_node(c, node, underlay=addr, labels={"host": node})
    await add_image(c, "harness-kernel")
    await add_image(c, IMAGE, kernel_id="harness-kernel")
    try:
        yield c
    finally:
        await c.store.close()


def agent(core: Core, node: str) -> FakeAgent:
    assert isinstance(core.agents, FakeAgentPool)
    return core.agents.agents.setdefault(node, FakeAgent(node))


async def create(core: Core, name: str, node: str, network: str = "default",
                 groups_: tuple[str, ...] = (), pin: bool = True) -> VirtualMachine:
    nic = NetworkSpec(id="nic0", network_id=network, security_groups=groups_)
    spec = dataclasses.replace(SPEC, network=(nic,),
                               placement=PlacementSpec(node_selector={"host": node} if pin else {}))
    vm = await lifecycle.create(core, lifecycle.CreateVm(name, ORG, PROJ, spec, HypervisorType.KVM, {}, {}))
    assert vm.node_id == node
    return vm


def last_view(core: Core, node: str) -> agent_pb2.UpdateNetworkPeersRequest:
    told = agent(core, node).overlays
    assert told, f"{node} was told nothing"
    return told[-1]


def fdb(view: agent_pb2.UpdateNetworkPeersRequest) -> set[tuple[str, str]]:
    return {(e.mac_address, e.remote) for e in view.fdb}


async def test_each_node_is_told_the_other_and_its_macs(core: Core) -> None:
    a = await create(core, "a", "node-a")
    assert list(last_view(core, "node-a").peers) == []  # alone on the network: nobody to tunnel to
    b = await create(core, "b", "node-b")
    mac_a, mac_b = a.spec.network[0].mac_address, b.spec.network[0].mac_address
    to_a, to_b = last_view(core, "node-a"), last_view(core, "node-b")
    assert list(to_a.peers) == [UNDERLAY["node-b"]] and fdb(to_a) == {(mac_b, UNDERLAY["node-b"])}
    assert list(to_b.peers) == [UNDERLAY["node-a"]] and fdb(to_b) == {(mac_a, UNDERLAY["node-a"])}
    assert to_a.network.vni and to_a.network.id == a.spec.network[0].network_id
    assert to_a.revision > 0


async def test_delete_takes_the_mac_and_the_node_out(core: Core) -> None:
    await create(core, "a", "node-a")
    await create(core, "a2", "node-a")
    b = await create(core, "b", "node-b")
    first = last_view(core, "node-a")
    await lifecycle.delete(core, VmRef(ORG, PROJ, b.id), force=True)
    after = last_view(core, "node-a")
    assert list(after.peers) == [] and not after.fdb
    assert after.revision > first.revision  # the newer view wins on the agent
    # the node that lost its last port of the network is not told about it any more
    assert all(v.revision <= first.revision or not v.peers for v in agent(core, "node-b").overlays)


async def test_second_network_is_not_mixed_in(core: Core) -> None:
    await networks.create(core.store, networks.NetworkRequest(ORG, PROJ, "other", "10.9.0.0/24"))
    await create(core, "a", "node-a")
    c = await create(core, "c", "node-b", network="other")
    to_b = last_view(core, "node-b")
    assert to_b.network.id == c.spec.network[0].network_id and list(to_b.peers) == [] and not to_b.fdb


async def test_agent_restart_is_told_everything_again(core: Core) -> None:
    await create(core, "a", "node-a")
    b = await create(core, "b", "node-b")
    agent(core, "node-a").overlays.clear()
    agent(core, "node-b").overlays.clear()
    assert await peers.push_node(core, "node-a") == 1
    assert fdb(last_view(core, "node-a")) == {(b.spec.network[0].mac_address, UNDERLAY["node-b"])}
    assert list(last_view(core, "node-b").peers) == [UNDERLAY["node-a"]]  # its address may be new to the others


async def test_removed_node_leaves_the_overlay(core: Core) -> None:
    await create(core, "a", "node-a")
    await create(core, "b", "node-b")
    await removal.delete_node(core, "node-b", force=True)
    after = last_view(core, "node-a")
    assert list(after.peers) == [] and not after.fdb


async def test_remote_group_follows_membership(core: Core) -> None:
    # `web` lets in ICMP from members of `db`; a joins web, then b joins db on another node and leaves again
    await groups.create(core.store, ORG, PROJ, "web", [SecurityRule(Direction.INGRESS, Protocol.ICMP,
                                                                    remote_group="db")])
    await groups.create(core.store, ORG, PROJ, "db", [SecurityRule(Direction.EGRESS)])
    a = await create(core, "a", "node-a", groups_=("web",))
    b = await create(core, "b", "node-b", groups_=("db",))
    port_a = next(iter(agent(core, "node-a").port_security))

    def remote_ips() -> list[str]:
        told = agent(core, "node-a").port_security[port_a]
        return [ip for g in told.security_groups for r in g.rules for ip in r.remote_ips]

    assert remote_ips() == [b.spec.network[0].ip_address]
    await lifecycle.delete(core, VmRef(ORG, PROJ, b.id), force=True)
    assert remote_ips() == []
    assert a.id  # a itself stays


async def test_unrelated_group_is_not_pushed(core: Core) -> None:
    await groups.create(core.store, ORG, PROJ, "web", [SecurityRule(Direction.INGRESS, Protocol.ICMP,
                                                                    remote_group="db")])
    await create(core, "a", "node-a", groups_=("web",))
    await create(core, "b", "node-b")  # in `default` only: nobody names `default` as a remote group
    assert not agent(core, "node-a").port_security


async def test_node_without_underlay_is_told_nothing(tmp_path: Path) -> None:
    core = await make_core(tmp_path)
    try:
        await add_node(core, "solo")
        await add_image(core, "harness-kernel")
        await add_image(core, IMAGE, kernel_id="harness-kernel")
        nic = NetworkSpec(id="nic0", network_id="default")
        vm = await lifecycle.create(core, lifecycle.CreateVm("s", ORG, PROJ, dataclasses.replace(SPEC, network=(nic,)),
                                                             HypervisorType.KVM, {}, {}))
        assert vm.node_id == "solo" and agent(core, "solo").ports[vm.id] == [mac(vm)]
        assert "UpdateNetworkPeers" not in agent(core, "solo").calls  # one machine: no tunnels, no extra call
    finally:
        await core.store.close()


async def test_moved_vm_takes_its_port_along(tmp_path: Path) -> None:
    """A cold move (drain) plumbs the VM's port on the new node and the overlays follow its MAC."""
    core = await make_core(tmp_path)
    try:
        await add_node(core, "node-a", underlay=UNDERLAY["node-a"], labels={"host": "node-a"})
        await add_image(core, "harness-kernel")
        await add_image(core, IMAGE, kernel_id="harness-kernel")
        x = await create(core, "x", "node-a", pin=False)  # the only node: x lands on node-a, unpinned
        await add_node(core, "node-b", underlay=UNDERLAY["node-b"], labels={"host": "node-b"})
        await create(core, "y", "node-b")
        assert fdb(last_view(core, "node-b")) == {(mac(x), UNDERLAY["node-a"])}
        await drain.move(core, await core.find_vm(VmRef(ORG, PROJ, x.id)), "node-a", allow_disk_loss=True)
        assert agent(core, "node-b").ports[x.id] == [mac(x)]
        after = last_view(core, "node-b")
        assert list(after.peers) == [] and not after.fdb  # both on node-b now
    finally:
        await core.store.close()


def mac(vm: VirtualMachine) -> str:
    return vm.spec.network[0].mac_address


def test_overlay_view_is_validated_naming_the_field() -> None:
    net = Network(id="n1", cidr="10.0.0.0/24", vni=5)
    good = NetworkPeers(net, ("192.0.2.2",), (FdbEntry("52:54:00:00:00:01", "192.0.2.2"),), 3)
    assert validation_reports.network_peers(good) is good
    for bad, field in (
        (dataclasses.replace(good, peers=("nope",)), "peers[0]"),
        (dataclasses.replace(good, peers=("0.0.0.0",)), "peers[0]"),
        (dataclasses.replace(good, fdb=(FdbEntry("52:54:00:00:00:0G", "192.0.2.2"),)), "fdb[0].mac_address"),
        (dataclasses.replace(good, fdb=(FdbEntry("52:54:00:00:00:01", ""),)), "fdb[0].remote"),
        (dataclasses.replace(good, fdb=(FdbEntry("52:54:00:00:00:01", "224.0.0.1"),)), "fdb[0].remote"),
        (dataclasses.replace(good, network=dataclasses.replace(net, id="../x")), "network.id"),
        (dataclasses.replace(good, network=dataclasses.replace(net, vni=1 << 24)), "network.vni"),
    ):
        with pytest.raises(InvalidArgument) as err:
            validation_reports.network_peers(bad)
        assert err.value.field == field


def test_underlay_address_is_validated() -> None:
    assert validation_reports.underlay_address("", "x") == ""
    assert validation_reports.underlay_address("10.1.2.3", "x") == "10.1.2.3"
    for bad in ("10.1.2", "::1", "0.0.0.0", "239.1.1.1", "255.255.255.255", "10.0.0.1; rm"):
        with pytest.raises(InvalidArgument) as err:
            validation_reports.underlay_address(bad, "node.underlay_address")
        assert err.value.field == "node.underlay_address"


def test_heartbeat_underlay_address_is_validated() -> None:
    assert validation_reports.node(Node(id="n1", underlay_address="192.0.2.9")).underlay_address == "192.0.2.9"
    with pytest.raises(InvalidArgument) as err:
        validation_reports.node(Node(id="n1", underlay_address="192.0.2.300"))
    assert err.value.field == "node.underlay_address"
