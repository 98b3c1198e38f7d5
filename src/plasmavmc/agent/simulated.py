"""SIMULATED agents: many nodes in one process, each with a `SimulatedBackend`, for scale and benchmarks.

One gRPC server serves `AgentService` for every simulated node (they all advertise its address), with
the real `AgentServicer`, the real image cache and the real reporter; only the hypervisor is
simulated, so nothing boots. Each node heartbeats on its own schedule with its own VM reports (delta
heartbeats, `agent/heartbeats.py`, as a real agent), and
`pause()` / `resume()` silence one node's heartbeats to simulate a failed node. Heartbeats go over one
`HeartbeatStream` per node (`agent/heartbeat_lines.py`); SIGUSR1 turns the fleet to unary Heartbeat calls
and back (a benchmark's baseline in the same run).

Routing: calls carry a VM id, not a node id, so the fleet finds the node by VM. During a cold move a VM
briefly exists on two simulated nodes (created on the new one before it is deleted on the old one):
the newest copy is the live one for every operation, and DeleteVm removes the oldest copy first.

Run: `python -m plasmavmc.agent.simulated --control-plane 127.0.0.1:8080 --addr 127.0.0.1:9000
--nodes 1000` (`--help` for capacity and labels).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc

from plasmavmc.agent import heartbeats
from plasmavmc.agent.image_cache import ImageCache
from plasmavmc.agent.reporter import Reporter
from plasmavmc.agent.service import AgentServicer
from plasmavmc.agent.vms import NodeVms
from plasmavmc.errors import HypervisorError, PlasmaError, VmNotFound
from plasmavmc.hypervisor.base import HypervisorBackend, VmHandle
from plasmavmc.hypervisor.provisional import Commitment, committed
from plasmavmc.hypervisor.registry import HypervisorRegistry
from plasmavmc.hypervisor.simulated import SimulatedBackend
from plasmavmc.shutdown import until_terminated
from plasmavmc.types.image import Image
from plasmavmc.types.network import PortRequest
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.vm import HypervisorType, VirtualMachine, VmStatus
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc
from plasmavmc.wire.chain import MethodChain
from plasmavmc.wire.guard import RequestGuard

log = logging.getLogger(__name__)
AGENT_VERSION = "simulated"
REGISTER_CONCURRENCY = 64
REGISTER_TIMEOUT = 60.0


def simulated_node(node_id: str, addr: str, capacity: NodeCapacity, labels: dict[str, str] | None = None) -> Node:
    return Node(
        id=node_id,
        name=node_id,
        state=NodeState.READY,
        capacity=capacity,
        allocatable=capacity,
        hypervisors=(HypervisorType.SIMULATED,),
        labels=dict(labels or {}),
        agent_version=AGENT_VERSION,
        agent_address=addr,
        accelerator="simulated",
    )


class FleetVms(NodeVms):
    """The VM table of every simulated node: `copies[vm_id]` lists (node id, handle), oldest first."""

    def __init__(self, backends: dict[str, SimulatedBackend], cache: ImageCache, reporter: Reporter) -> None:
        super().__init__("simulated-fleet", HypervisorRegistry(), cache, reporter)
        self.backends = backends
        self.copies: dict[str, list[tuple[str, VmHandle]]] = {}
        self._live: dict[str, set[str]] = {node_id: set() for node_id in backends}  # node -> its live VMs

    def node_of(self, vm_id: str) -> str | None:
        copies = self.copies.get(vm_id)
        return copies[-1][0] if copies else None

    def vms_on(self, node_id: str) -> list[str]:
        return sorted(self._live.get(node_id, ()))

    def _set_copies(self, vm_id: str, copies: list[tuple[str, VmHandle]]) -> None:
        if old := self.copies.get(vm_id):
            self._live[old[-1][0]].discard(vm_id)
        if copies:
            self.copies[vm_id] = copies
            self._live[copies[-1][0]].add(vm_id)
        else:
            self.copies.pop(vm_id, None)

    def lookup(self, vm_id: str) -> tuple[HypervisorBackend, VmHandle]:
        copies = self.copies.get(vm_id)
        if not copies:
            raise VmNotFound(f"VM {vm_id} is on no simulated node", field="vm_id")
        node_id, handle = copies[-1]
        return self.backends[node_id], handle

    async def create(self, vm: VirtualMachine, images: list[Image], ports: Sequence[PortRequest] = ()) -> VmHandle:
        backend = self.backends.get(vm.node_id or "")
        if backend is None:
            raise HypervisorError(f"node {vm.node_id} is not a simulated node of this fleet")
        if vm.hypervisor != HypervisorType.SIMULATED:
            raise HypervisorError(f"hypervisor {vm.hypervisor.value} is not enabled on simulated nodes")
        handle = await backend.create(vm, await self._local_images(vm, images))
        copies = [c for c in self.copies.get(vm.id, []) if c[0] != vm.node_id]
        self._set_copies(vm.id, [*copies, (vm.node_id or "", handle)])
        self.handles[vm.id] = handle
        return handle

    async def create_started(self, vm: VirtualMachine, images: list[Image], ports: Sequence[PortRequest] = (),
                             ready: Callable[[VmHandle], None] | None = None, *,
                             output_sent: asyncio.Event | None = None,
                             commitment: Commitment | None = None) -> tuple[VmHandle, VmStatus]:
        """Through this fleet's own `create` (its node's backend, its copies table), then `start`; a
        provisional create waits for its word first."""
        await committed(commitment)
        handle = await self.create(vm, images, ports)
        await self.start(vm.id)
        if ready is not None:
            ready(handle)
        backend, _ = self.lookup(vm.id)
        return handle, await backend.status_after_start(handle)

    async def delete(self, vm_id: str) -> None:
        copies = self.copies.get(vm_id)
        if not copies:
            return
        node_id, handle = copies[0]
        if len(copies) == 1:
            await self._unsupervise(vm_id)
            self.handles.pop(vm_id, None)
        self._set_copies(vm_id, copies[1:])
        await self.backends[node_id].delete(handle)


class FleetReporter(Reporter):
    """Sends each VM's exit report as the node that holds the VM."""

    def __init__(self, endpoints: Sequence[str]) -> None:
        super().__init__(endpoints)
        self.fleet: FleetVms | None = None

    async def report(self, node_id: str, report: agent_pb2.VmReport) -> None:
        owner = self.fleet.node_of(report.vm_id) if self.fleet else None
        await super().report(owner or node_id, report)


class SimulatedFleet:
    def __init__(
        self,
        control_plane: str | Sequence[str],
        addr: str,
        nodes: Sequence[Node],
        cache_dir: Path,
        heartbeat_interval: float = 5.0,
        register_timeout: float = REGISTER_TIMEOUT,
    ) -> None:
        """`control_plane`: one endpoint or several (replicas, tried in order as a real agent does)."""
        planes = [control_plane] if isinstance(control_plane, str) else list(control_plane)
        self.addr = addr
        self.nodes = {n.id: n for n in nodes}
        self.heartbeat_interval = heartbeat_interval
        self.register_timeout = register_timeout
        self.backends = {n.id: SimulatedBackend(f"simulated/{n.id}") for n in nodes}
        self.reporter = FleetReporter(planes)
        self.vms = FleetVms(self.backends, ImageCache(cache_dir, self.reporter.channels[0]), self.reporter)
        self.reporter.fleet = self.vms
        self.paused: set[str] = set()
        self._sending: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # held while a heartbeat is out
        self.deltas: dict[str, heartbeats.DeltaState] = {}  # per node: what the control plane acknowledged
        self._server: grpc.aio.Server | None = None
        self._servicer: AgentServicer | None = None
        self._beats: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Serve AgentService, register every node (first heartbeat), then heartbeat periodically."""
        chain = MethodChain([RequestGuard()])  # as a real agent's (`app.agent_layers`), without observing
        self._servicer = AgentServicer(self.vms)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self._servicer, chain)
        self._server = grpc.aio.server()
        chain.serve_on(self._server)
        self._server.add_insecure_port(self.addr)
        await self._server.start()
        limit = asyncio.Semaphore(REGISTER_CONCURRENCY)

        deadline = time.monotonic() + self.register_timeout

        async def register(node_id: str, index: int) -> None:
            delay = 0.1
            async with limit:
                while True:  # like a real agent: keep trying until the control plane answers
                    try:
                        await self.heartbeat(node_id)
                        break
                    except PlasmaError:
                        if time.monotonic() > deadline:
                            raise
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jittered: no retries in step
                    delay = min(delay * 2, 2.0)
            # heartbeats from now on, as a real agent (not once the whole fleet has registered)
            self._beats.append(asyncio.create_task(self._beat_forever(node_id, index)))

        await asyncio.gather(*(register(n, i) for i, n in enumerate(self.nodes)))

    async def heartbeat(self, node_id: str) -> None:
        node = self.nodes[node_id]
        observed_at = int(time.time())  # before any status is read, as the real agent (`agent/app.py`)
        statuses = {}
        for vm_id in self.vms.vms_on(node_id):
            with contextlib.suppress(PlasmaError):
                statuses[vm_id] = await self.vms.status(vm_id)
        now = type(node)(**{**node.__dict__, "last_heartbeat": observed_at})
        state = self.deltas.setdefault(node_id, heartbeats.DeltaState())
        await heartbeats.send(self.reporter, now, statuses, state, self.vms.exit_kind)

    async def _beat_forever(self, node_id: str, index: int) -> None:
        # spread the nodes' heartbeats over the interval instead of sending them in one burst
        await asyncio.sleep(self.heartbeat_interval * (index % 97) / 97)
        while True:
            failed = False
            if node_id not in self.paused:
                async with self._sending[node_id]:
                    try:
                        await self.heartbeat(node_id)
                    except PlasmaError as err:
                        log.warning("simulated node %s: heartbeat failed: %s", node_id, err)
                        failed = True
            await asyncio.sleep(heartbeats.next_beat(self.heartbeat_interval, failed))

    def toggle_streams(self) -> None:
        """From the next heartbeat on, every node sends unary Heartbeat calls instead of stream messages
        (or, the next time, stream messages again)."""
        self.reporter.streams = not self.reporter.streams
        log.warning("simulated nodes: heartbeats %s", "over streams" if self.reporter.streams else "unary")

    def pause(self, node_id: str) -> None:
        """Stop this node's heartbeats (a simulated node failure); its VMs stay as they are. A heartbeat
        already on its way still arrives (`quiet` waits for it)."""
        self.paused.add(node_id)

    async def quiet(self, node_id: str) -> None:
        """Until no heartbeat of the node is on its way (after `pause`: none will be until `resume`)."""
        async with self._sending[node_id]:
            pass

    def resume(self, node_id: str) -> None:
        self.paused.discard(node_id)

    async def stop(self) -> None:
        for task in self._beats:
            task.cancel()
        for task in self._beats:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.vms.close()
        if self._servicer is not None:
            self._servicer.disarm()
        if self._server is not None:
            await self._server.stop(grace=1)
        await self.reporter.close()


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="plasmavmc-simulated-agents", description="SIMULATED agents (boot nothing)")
    p.add_argument("--control-plane", required=True, metavar="HOST:PORT")
    p.add_argument("--addr", required=True, metavar="HOST:PORT", help="AgentService address of every node")
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--prefix", default="sim")
    p.add_argument("--vcpus", type=int, default=64)
    p.add_argument("--memory-mib", type=int, default=256 * 1024)
    p.add_argument("--storage-gib", type=int, default=4096)
    p.add_argument("--zones", type=int, default=1, help="label nodes zone=z0..z{N-1}, round robin")
    p.add_argument("--heartbeat-interval", type=float, default=5.0)
    p.add_argument("--register-timeout", type=float, default=REGISTER_TIMEOUT,
                   help="seconds a node keeps trying its first heartbeat")
    p.add_argument("--cache-dir", type=Path, required=True)
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    capacity = NodeCapacity(args.vcpus, args.memory_mib, args.storage_gib)
    nodes = [
        simulated_node(f"{args.prefix}-{i:05d}", args.addr, capacity, {"zone": f"z{i % args.zones}"})
        for i in range(args.nodes)
    ]
    fleet = SimulatedFleet(args.control_plane, args.addr, nodes, args.cache_dir, args.heartbeat_interval,
                           args.register_timeout)
    await fleet.start()
    # a benchmark's baseline in the same run: SIGUSR1 turns every node to unary Heartbeat calls and back
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, fleet.toggle_streams)
    log.info("%d simulated nodes registered; serving on %s", len(nodes), args.addr)
    print(f"READY {len(nodes)}", flush=True)
    try:
        await until_terminated()
    finally:
        await fleet.stop()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(_args(argv)))


if __name__ == "__main__":
    main()
