"""In-process harness for core: the real `Core` over a temp-file SQLite store, with a fake agent pool.

`FakeAgentPool` hands core its real `AgentClient` (so requests are built and answers converted exactly as
in production) over an in-memory `FakeAgent` that answers the AgentService calls core makes: it stands
in for the network and a node agent, never for a hypervisor. A test on this harness may check what core
stores and asks, never that a VM booted. Everything else — store, quotas, scheduler, node registry,
image catalog, transition table — is the real code, so lifecycle, placement, quota and report logic get
fast unit tests.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plasmavmc.core.agents import AgentClient, AgentPool
from plasmavmc.core.context import Core
from plasmavmc.core.nodes.registry import NodeRegistry
from plasmavmc.errors import InvalidState, VmNotFound
from plasmavmc.images.catalog import ImageCatalog
from plasmavmc.images.local import LocalImageStore
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types import codec
from plasmavmc.types.image import Image, ImageFormat, ImageStatus, Visibility
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, HypervisorType, MemorySpec, VirtualMachine, VmSpec
from plasmavmc.v1 import agent_pb2, types_pb2

IMAGE = "harness-image"
_pids = itertools.count(1000)


@dataclass
class FakeAgent:
    """One node's AgentService in memory: which VMs it holds, which run, and every call made."""

    node_id: str
    vms: dict[str, VmState] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    overlays: list[agent_pb2.UpdateNetworkPeersRequest] = field(default_factory=list)  # as told, in order
    ports: dict[str, list[str]] = field(default_factory=dict)  # VM id -> the MACs of the ports told at create
    port_security: dict[str, agent_pb2.UpdatePortSecurityRequest] = field(default_factory=dict)  # the last, by port

    def _vm(self, vm_id: str) -> VmState:
        if vm_id not in self.vms:
            raise VmNotFound(f"node {self.node_id} has no VM {vm_id}")
        return self.vms[vm_id]

    async def CreateVm(self, request: agent_pb2.CreateVmRequest, timeout: float | None = None) -> Any:
        self.calls.append("CreateVm")
        self.vms[request.vm.id] = VmState.RUNNING if request.start else VmState.STOPPED
        self.ports[request.vm.id] = [p.mac_address for p in request.ports]
        if request.start:  # created and started in the one call: the reply carries the running status
            running = types_pb2.VmStatus(actual_state=types_pb2.VmState.Value("VM_STATE_RUNNING"),
                                         host_pid=next(_pids))
            return agent_pb2.VmHandle(vm_id=request.vm.id, started=running)
        return agent_pb2.VmHandle(vm_id=request.vm.id)

    async def StartVm(self, request: agent_pb2.StartVmRequest, timeout: float | None = None) -> Any:
        self.calls.append("StartVm")
        if self._vm(request.vm_id) is VmState.RUNNING:
            raise InvalidState(f"VM {request.vm_id} is already running")
        self.vms[request.vm_id] = VmState.RUNNING
        return types_pb2.Empty()

    async def StopVm(self, request: agent_pb2.StopVmRequest, timeout: float | None = None) -> Any:
        self.calls.append("StopVm")
        self._vm(request.vm_id)
        self.vms[request.vm_id] = VmState.STOPPED
        return types_pb2.Empty()

    async def DeleteVm(self, request: agent_pb2.DeleteVmRequest, timeout: float | None = None) -> Any:
        self.calls.append("DeleteVm")
        self.vms.pop(request.vm_id, None)
        return types_pb2.Empty()

    async def GetVmStatus(self, request: agent_pb2.GetVmStatusRequest, timeout: float | None = None) -> Any:
        self.calls.append("GetVmStatus")
        running = self._vm(request.vm_id) is VmState.RUNNING
        state = types_pb2.VmState.Value("VM_STATE_RUNNING" if running else "VM_STATE_STOPPED")
        return types_pb2.VmStatus(actual_state=state, host_pid=next(_pids) if running else 0)


    async def UpdateNetworkPeers(self, request: agent_pb2.UpdateNetworkPeersRequest,
                                 timeout: float | None = None) -> Any:
        self.calls.append("UpdateNetworkPeers")
        self.overlays.append(request)
        return types_pb2.Empty()

    async def UpdatePortSecurity(self, request: agent_pb2.UpdatePortSecurityRequest,
                                 timeout: float | None = None) -> Any:
        self.calls.append("UpdatePortSecurity")
        self.port_security[request.port_id] = request
        return types_pb2.Empty()


class FakeAgentPool(AgentPool):
    """Core's `AgentPool` with one `FakeAgent` per node instead of a gRPC channel."""

    def __init__(self) -> None:
        super().__init__()
        self.agents: dict[str, FakeAgent] = {}

    def client(self, node: Node) -> AgentClient:
        agent = self.agents.setdefault(node.id, FakeAgent(node.id))
        return AgentClient(node, agent)  # type: ignore[arg-type]  # the stub's call surface, in memory


async def make_core(root: Path, store: Store | None = None) -> Core:
    """`store`: another real store to run on (default: a SQLite file under `root`)."""
    store = store or await SqliteStore.open(root / "state.db")
    return Core(store, ImageCatalog(store), LocalImageStore(root / "images"), NodeRegistry(store, 3600),
                FakeAgentPool())


async def add_node(core: Core, node_id: str, vcpus: int = 8, memory_mib: int = 16384, underlay: str = "",
                   labels: dict[str, str] | None = None) -> Node:
    capacity = NodeCapacity(vcpus=vcpus, memory_mib=memory_mib, storage_gib=500)
    node = Node(id=node_id, name=node_id, state=NodeState.READY, capacity=capacity, allocatable=capacity,
                hypervisors=(HypervisorType.KVM, HypervisorType.FIRECRACKER), agent_address=f"fake:{node_id}",
                labels=dict(labels or {}), underlay_address=underlay)
    return await core.nodes.heartbeat(node)


async def add_image(core: Core, image_id: str = IMAGE, **metadata: str) -> Image:
    """A public, available qcow2 image record (its bytes are never read on this harness)."""
    image = Image(id=image_id, name=image_id, visibility=Visibility.PUBLIC, format=ImageFormat.QCOW2,
                  status=ImageStatus.AVAILABLE, size_bytes=1 << 20, metadata=dict(metadata))
    await core.store.put(keys.public_image(image_id), codec.dumps(image))
    return image


def vm_record(state: VmState, node_id: str, org_id: str = "org-h", project_id: str = "p") -> Write:
    """The write of a bare VM record in `state` on `node_id` (for indexes and gauges; no agent holds it)."""
    spec = VmSpec(cpu=CpuSpec(vcpus=1), memory=MemorySpec(size_mib=128),
                  disks=(DiskSpec(id="root", source=DiskSource(image_id=IMAGE), size_gib=1),))
    vm = VirtualMachine(id=str(uuid.uuid4()), name=f"r-{uuid.uuid4().hex[:8]}", org_id=org_id, project_id=project_id,
                        state=state, spec=spec, node_id=node_id, hypervisor=HypervisorType.KVM,
                        updated_at=int(time.time()))
    return Write(keys.vm(vm.org_id, vm.project_id, vm.id), codec.dumps(vm))
