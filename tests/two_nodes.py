"""Two nodes and one control plane on a private underlay: a reusable harness for cross-node network tests.

Layout (every name lives inside namespaces this harness or its caller made, so nothing touches the host's
network): the calling process runs inside a "hub" namespace (see `run_inside_hub`); there the harness puts
a bridge `ul0` holding `HUB_ADDR` (192.0.2.254/24, TEST-NET-1) and starts the server (gRPC on HUB_ADDR,
console gateway and /ready on loopback). Each node is a namespace of its own, joined to `ul0` by a veth
whose node end `u0` holds the node's underlay address (192.0.2.1, 192.0.2.2); its agent runs there (`ip
netns exec`, argv list), with `[network] underlay_address` set to that address and the label
`host=<node id>` (pin a VM with `spec.placement.node_selector={"host": node_id}`), so its QEMU guests,
bridges, VXLAN devices, nftables tables and dnsmasq all live in the node's namespace. The underlay carries
both the control traffic and the tunnels.

With `provider="ovn"` the hub also runs OVN central (`tests/ovn.py`: NB, SB, northd; NB and SB on TCP at
HUB_ADDR) and each node namespace its own Open_vSwitch DB, ovs-vswitchd (userspace datapath) and
ovn-controller (chassis = node id, Geneve encap = its underlay address, which moves from `u0` to the OVS
bridge `br-phy` so tunnels leave through OVS); the agents get `[network] provider = "ovn"`,
`overlay_endpoint` = the NB over the underlay and `ovs_endpoint` = their node's Open_vSwitch DB.

API:
* `run_inside_hub(test_file, expect_passed, timeout)`: the outer test; makes the hub namespace and runs
  `pytest -k inner <test_file>` inside it with `INNER` set; asserts the inner run passed `expect_passed`.
* `inner_only`: marks the inner tests (skipped unless `INNER` is set).
* `start(root, guest, provider="bridge", agent_extra="")` → `TwoNodes` (call inside the hub): the
  namespaces, the underlay, the server (waited for) and both agents. `await TwoNodes.wait_nodes(client)`:
  until both nodes are READY with their underlay address. `TwoNodes.stop()` ends the agents, the server,
  their guests and removes the node namespaces. `TwoNodes.inside(node)` runs a block (netlink, new
  processes) in a node's namespace.
  `TwoNodes.nodes`: [`NodeNs`] with `id`, `ns`, `underlay`, `root` (its agent's state: `root/net` is the
  network provider's state dir), `ovn` (its `OvnNode`, ovn only); `TwoNodes.node(id)`;
  `TwoNodes.central`: the `OvnCentral` (ovn only). `links(node)`: the link names in a node's namespace.
Guests on the cluster (fixtures, DHCP, ping): `tests/two_nodes_guests.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyroute2 import netns as pnetns

from plasmavmc.client import PlasmaClient
from plasmavmc.types.node import NodeState
from tests.conftest import Proc, kill_leftover_qemu, short_run_dir, wait_http_ready
from tests.netns import run_file_in_netns, unique_name
from tests.ovn import OvnCentral, OvnNode
from tests.ovn import require as require_ovn
from tests.ports import free_port

INNER = "PLASMAVMC_TWO_NODES_INNER"
HUB_ADDR = "192.0.2.254"
UNDERLAY = ("192.0.2.1", "192.0.2.2")
BRIDGE_NAME = "pvul"  # the bridge provider's name stem on both nodes
inner_only = pytest.mark.skipif(INNER not in os.environ, reason="runs inside its hub namespace (the outer test)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def run_inside_hub(test_file: str, expect_passed: int, timeout: float = 1500) -> None:
    """Make the hub namespace and run the inner tests (named `inner`) of `test_file` in it."""
    run_file_in_netns("hub", test_file, INNER, expect_passed, timeout)


@dataclass
class NodeNs:
    id: str
    ns: str
    underlay: str
    root: Path
    agent: Proc | None = None
    ovn: OvnNode | None = None


@dataclass
class TwoNodes:
    root: Path
    api: str  # the server's gRPC address (on the underlay)
    http: str  # the server's /ready (loopback of the hub)
    console: str  # the console gateway's URL
    server: Proc
    nodes: list[NodeNs] = field(default_factory=list)
    central: OvnCentral | None = None

    def node(self, node_id: str) -> NodeNs:
        return next(n for n in self.nodes if n.id == node_id)

    @contextlib.contextmanager
    def inside(self, node: NodeNs) -> Iterator[None]:
        """Netlink sockets made and processes started in this block are in `node`'s namespace."""
        pnetns.pushns(node.ns)
        try:
            yield
        finally:
            pnetns.popns()

    def logs(self) -> str:
        parts = [self.server.log.read_text()[-4000:]]
        parts += [f"---{n.id}---\n" + (n.root / "agent.log").read_text()[-4000:] for n in self.nodes
                  if (n.root / "agent.log").exists()]
        return "\n".join(parts)

    def check_alive(self) -> None:
        for proc in (self.server, *(n.agent for n in self.nodes)):
            assert proc is not None and proc.popen is not None
            if proc.popen.poll() is not None:
                raise AssertionError(f"{proc.argv[-3:]} exited:\n{self.logs()}")

    async def wait_nodes(self, client: PlasmaClient, timeout: float = 60.0) -> None:
        """Until the server lists both nodes READY with their underlay addresses."""
        want = {(n.id, n.underlay) for n in self.nodes}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            have = {(n.id, n.underlay_address) for n in await client.list_nodes() if n.state == NodeState.READY}
            if want <= have:
                return
            await asyncio.sleep(0.2)  # polling the agents' registration with a deadline
        raise AssertionError(f"nodes not READY with their underlay in {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        """Agents, then the server (a process that does not stop on SIGTERM fails the test), every guest,
        the OVN daemons and the node namespaces."""
        try:
            for node in self.nodes:
                if node.agent is not None:
                    node.agent.stop()
            self.server.stop()
        finally:
            for node in self.nodes:
                kill_leftover_qemu(node.root)
                if node.ovn is not None:
                    node.ovn.stop()
                subprocess.run(["ip", "netns", "del", node.ns], check=False, timeout=30)
            if self.central is not None:
                self.central.stop()


def links(node: NodeNs) -> list[str]:
    """The names of the links in `node`'s namespace (without the `@peer` suffix)."""
    shown = subprocess.run(["ip", "netns", "exec", node.ns, "ip", "-o", "link", "show"], capture_output=True,
                           text=True, check=True, timeout=30)
    return [line.split(": ")[1].split("@")[0] for line in shown.stdout.splitlines()]


def _underlay(nodes: list[NodeNs]) -> None:
    _ip("link", "add", "ul0", "type", "bridge")
    _ip("addr", "add", f"{HUB_ADDR}/24", "dev", "ul0")
    _ip("link", "set", "ul0", "up")
    for i, node in enumerate(nodes):
        _ip("netns", "add", node.ns)
        _ip("link", "add", f"ulh{i}", "type", "veth", "peer", "name", "u0", "netns", node.ns)
        _ip("link", "set", f"ulh{i}", "master", "ul0", "up")
        inside = ["netns", "exec", node.ns, "ip"]
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "addr", "add", f"{node.underlay}/24", "dev", "u0")
        _ip(*inside, "link", "set", "u0", "up")


def _server_toml(root: Path, guest: Path, api: int, http: int, console: int) -> Path:
    path = root / "server.toml"
    path.write_text(
        f'[server]\naddr = "{HUB_ADDR}:{api}"\nmetrics_addr = "127.0.0.1:{http}"\n'
        f'console_addr = "127.0.0.1:{console}"\n'
        f'[store]\nbackend = "sqlite"\npath = "{root}/state.db"\n'
        f'[image_store]\nbackend = "local"\npath = "{root}/images"\nseed_dirs = ["{guest}"]\n'
        f'[agents]\nheartbeat_timeout_seconds = 20\n[logging]\nlevel = "info"\nformat = "text"\n')
    return path


def _ovn(cluster: TwoNodes) -> str:
    """OVN central in the hub, OVS + ovn-controller in each node; the agents' `[network]` lines for it."""
    require_ovn()
    cluster.central = central = OvnCentral.start(listen=HUB_ADDR)
    for node in cluster.nodes:
        node.ovn = OvnNode.start(central, node.id, node.underlay, node.ns, central.sb_tcp, underlay="u0")
    return f'overlay_endpoint = "{central.nb_tcp}"\n'


def _agent_toml(node: NodeNs, api: int, provider: str, extra: str) -> Path:
    run_dir = short_run_dir(node.root)
    if node.ovn is not None:
        extra = f'ovs_endpoint = "{node.ovn.ovs_db}"\n{extra}'
    path = node.root / "agent.toml"
    path.write_text(
        f'[agent]\nnode_id = "{node.id}"\ncontrol_plane = "http://{HUB_ADDR}:{api}"\n'
        f'addr = "{node.underlay}:{free_port()}"\nheartbeat_interval_seconds = 1\n'
        f'metrics_addr = "127.0.0.1:{free_port()}"\nlabels = {{ host = "{node.id}" }}\n'
        f'[hypervisors]\nenabled = ["kvm"]\n[hypervisors.kvm]\nruntime_dir = "{run_dir}/kvm"\n'
        f'[storage]\nimage_cache_dir = "{node.root}/cache"\nruntime_dir = "{node.root}/vms"\n'
        f'[network]\nprovider = "{provider}"\nbridge_name = "{BRIDGE_NAME}"\nstate_dir = "{node.root}/net"\n'
        f'underlay_address = "{node.underlay}"\n{extra}'
        f'[logging]\nlevel = "info"\nformat = "text"\n')
    return path


def start(root: Path, guest: Path, provider: str = "bridge", agent_extra: str = "",
          timeout: float = 60.0) -> TwoNodes:
    """Both node namespaces, the underlay, the server and both agents (call inside the hub namespace)."""
    assert INNER in os.environ, "start() runs inside the hub namespace: see run_inside_hub()"
    api, http, console = free_port(), free_port(), free_port()
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(_server_toml(root, guest, api, http,
                                                                                           console))],
                  root / "server.log")
    cluster = TwoNodes(root, f"{HUB_ADDR}:{api}", f"http://127.0.0.1:{http}", f"http://127.0.0.1:{console}", server)
    for i, addr in enumerate(UNDERLAY):
        node_root = root / f"node-{'ab'[i]}"
        node_root.mkdir()
        cluster.nodes.append(NodeNs(f"node-{'ab'[i]}", unique_name(f"n{'ab'[i]}"), addr, node_root))
    try:
        _underlay(cluster.nodes)
        if provider == "ovn":
            agent_extra = _ovn(cluster) + agent_extra
        server.start()
        for node in cluster.nodes:
            cfg = _agent_toml(node, api, provider, agent_extra)
            node.agent = Proc(["ip", "netns", "exec", node.ns, sys.executable, "-m", "plasmavmc.agent.main",
                               "-c", str(cfg)], node.root / "agent.log")
            node.agent.start()
        wait_http_ready(f"{cluster.http}/ready", cluster.check_alive, timeout, cluster.logs)
    except BaseException:
        for proc in (*(n.agent for n in cluster.nodes if n.agent is not None), server):
            proc.kill()
        cluster.stop()
        raise
    return cluster
