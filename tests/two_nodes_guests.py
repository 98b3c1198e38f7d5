"""Guests on the two-node harness (`tests/two_nodes.py`), shared by every provider's cross-node test.

Fixtures (module scope; a test module imports them and may set `PROVIDER`, default "bridge"):
`cluster` (the `TwoNodes`), `api` (a client, both nodes READY), `nets` (networks `blue` 10.77.0.0/24 and
`red` 10.78.0.0/24 made through the API), `vms` (`PLACES`: b1 on blue pinned to node-a, b2 on blue and
r1 on red pinned to node-b, started and booted; force-deleted at the end unless a test did).
`delete_all` deletes the VMs and the networks through the API. `dhcp`/`ping` drive a guest's shell over
the console gateway; `check_dhcp_and_ping` is the shared assertion: every guest gets its API address by
DHCP, b1 and b2 ping each other across the nodes, r1 reaches neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import open_console
from plasmavmc.errors import PlasmaError
from plasmavmc.types.network import Network
from plasmavmc.types.vm import NetworkSpec, PlacementSpec, VirtualMachine
from tests import two_nodes
from tests.contract.backends import run
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec
from tests.e2e.test_qemu_api import WsStream
from tests.two_nodes import TwoNodes

PLACES = (("b1", "blue", "node-a"), ("b2", "blue", "node-b"), ("r1", "red", "node-b"))
NETS = (("blue", "10.77.0.0/24"), ("red", "10.78.0.0/24"))


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            guest_dir: Path) -> Iterator[TwoNodes]:
    provider = getattr(request.module, "PROVIDER", "bridge")
    c = two_nodes.start(tmp_path_factory.mktemp(f"twonodes-{provider}"), guest_dir, provider=provider)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
async def api(cluster: TwoNodes) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(cluster.api) as c:
        await cluster.wait_nodes(c)
        yield c


@pytest.fixture(scope="module")
async def nets(api: PlasmaClient) -> dict[str, Network]:
    return {name: await api.create_network(ORG, PROJECT, name, cidr) for name, cidr in NETS}


@pytest.fixture(scope="module")
async def vms(api: PlasmaClient, nets: dict[str, Network]) -> AsyncIterator[dict[str, VirtualMachine]]:
    made: dict[str, VirtualMachine] = {}
    try:
        for name, net, node in PLACES:
            spec = dataclasses.replace(tiny_spec(), network=(NetworkSpec(id="nic0", network_id=net),),
                                       placement=PlacementSpec(node_selector={"host": node}))
            made[name] = await api.create_vm(name, ORG, PROJECT, spec)
            assert made[name].node_id == node
            await api.start_vm(ORG, PROJECT, made[name].id)
        for vm in made.values():
            await console_until(api, vm.id, f"PLASMAVMC-READY name={vm.name} ", timeout=400)
        yield made
    finally:
        for vm in made.values():
            with contextlib.suppress(PlasmaError):  # the last test deleted them already
                await api.delete_vm(ORG, PROJECT, vm.id, force=True)


async def delete_all(api: PlasmaClient, nets: dict[str, Network], vms: dict[str, VirtualMachine]) -> None:
    for vm in vms.values():
        await api.delete_vm(ORG, PROJECT, vm.id, force=True)
    for net in nets.values():
        await api.delete_network(ORG, PROJECT, net.id)


async def dhcp(cluster: TwoNodes, api: PlasmaClient, vm: VirtualMachine, gateway: str) -> str:
    """The guest asks for its address (it must be the API's), takes it, and routes everything else via
    its network's gateway (so a packet to another network really leaves the guest)."""
    ip = (await api.get_vm(ORG, PROJECT, vm.id)).spec.network[0].ip_address
    assert ip, f"{vm.name} has no address in the API"
    shell = WsStream(await open_console(cluster.console, ORG, PROJECT, vm.id))
    try:
        out = await run(shell, "ip link set eth0 up; udhcpc -i eth0 -n -q -t 8 -T 2 -s /bin/true 2>&1", 120)
        assert f"lease of {ip} obtained" in out, out
        await run(shell, f"ip addr add {ip}/24 dev eth0; ip route add default via {gateway}")
    finally:
        await shell.close()
    return ip


async def ping(cluster: TwoNodes, vm: VirtualMachine, ip: str) -> str:
    shell = WsStream(await open_console(cluster.console, ORG, PROJECT, vm.id))
    try:
        return await run(shell, f"ping -c 3 -W 3 {ip}", 120)
    finally:
        await shell.close()


async def check_dhcp_and_ping(cluster: TwoNodes, api: PlasmaClient, nets: dict[str, Network],
                              vms: dict[str, VirtualMachine]) -> None:
    """DHCP on every guest; b1 and b2 reach each other across the nodes; r1 (red) reaches neither."""
    gateways = {net: nets[net].gateway for _, net, _ in PLACES}
    ips = {name: await dhcp(cluster, api, vms[name], gateways[net]) for name, net, _ in PLACES}
    assert all(gateways.values())  # the API shows the gateway the datapath uses
    assert re.search(r"[123] packets received", await ping(cluster, vms["b1"], ips["b2"]))
    assert re.search(r"[123] packets received", await ping(cluster, vms["b2"], ips["b1"]))
    for target in ("b1", "b2"):  # across nodes and on the same node: red reaches no blue guest
        out = await ping(cluster, vms["r1"], ips[target])
        assert re.search(r"\b0 packets received", out), out
