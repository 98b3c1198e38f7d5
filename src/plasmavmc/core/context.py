"""`Core`: the control plane's shared parts, and the VM lookups every operation starts with.

A VM is addressed by org, project and either its id or its name (names are unique per project; the name
index `plasmavmc/names/vm/...` maps a name to the id). Lookups validate every part first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from plasmavmc import validation
from plasmavmc.core.agents import AgentClient, AgentPool
from plasmavmc.core.loops.event_retention import Retention
from plasmavmc.core.nodes.registry import NodeRegistry
from plasmavmc.core.nodes.report_memory import ReportMemory
from plasmavmc.core.vms import events as vm_events  # noqa: F401  (registers the VM event deriver)
from plasmavmc.core.vms.reads import VmReads
from plasmavmc.errors import Unavailable, vm_not_found
from plasmavmc.images.catalog import ImageCatalog
from plasmavmc.images.store_base import ImageStore
from plasmavmc.scheduler import build as build_scheduler
from plasmavmc.scheduler.framework import Scheduler
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.records import Versioned, read
from plasmavmc.types.vm import VirtualMachine


@dataclass(frozen=True)
class VmRef:
    org_id: str
    project_id: str
    vm: str  # id or name

    def validated(self) -> VmRef:
        validation.name(self.org_id, "vm.org_id")
        validation.name(self.project_id, "vm.project_id")
        validation.vm_ref(self.vm, "vm.vm_id")
        return self


@dataclass
class Core:
    store: Store
    catalog: ImageCatalog
    image_files: ImageStore
    nodes: NodeRegistry
    agents: AgentPool
    scheduler: Scheduler = field(default_factory=build_scheduler)
    # the last heartbeat report applied per VM, so identical ones skip the store (core/nodes/report_memory.py)
    reports: ReportMemory = field(default_factory=ReportMemory)
    # this replica's id: owner of the operations it drives (core/pending.py); fresh per process
    server_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    event_retention: Retention = field(default_factory=Retention)
    # GetVm's watched copies of the VM records and names (core/vms/reads.py); None: read the store
    vm_reads: VmReads | None = None

    async def find_vm(self, ref: VmRef) -> Versioned[VirtualMachine]:
        ref = ref.validated()
        vm_id = ref.vm
        if not validation.is_uuid(vm_id):
            kv = await self.store.get(keys.vm_name(ref.org_id, ref.project_id, ref.vm))
            if kv is None:
                raise vm_not_found(ref.org_id, ref.project_id, ref.vm)
            vm_id = kv.value.decode()
        found = await read(self.store, VirtualMachine, keys.vm(ref.org_id, ref.project_id, vm_id))
        if found is None:
            raise vm_not_found(ref.org_id, ref.project_id, ref.vm)
        return found

    async def agent_for(self, vm: VirtualMachine) -> AgentClient:
        return await self.agent_on(vm.node_id, vm.id)

    async def agent_on(self, node_id: str | None, vm_id: str) -> AgentClient:
        """The agent of the node `node_id`, where the VM `vm_id` is placed (UNAVAILABLE: nowhere)."""
        if node_id is None:
            raise Unavailable(f"VM {vm_id} is not placed on a node")
        cached = self.nodes.cache.recent(node_id)  # the scheduler's copy, if it is fresh
        if cached is not None and cached.value.agent_address:
            return self.agents.client(cached.value)
        return self.agents.client((await self.nodes.get(node_id)).value)
