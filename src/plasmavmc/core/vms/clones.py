"""CreateVm with `source_snapshot` (a spec extension): a Firecracker VM cloned from a snapshot.

`resolve` turns the request into an ordinary create before anything is written: the source VM is
looked up in the request's own org/project (a VM the caller cannot see is VM_NOT_FOUND, word for word
as a missing one; the servicer has authorized the caller on it), and must be a Firecracker VM on a
node, without NICs; the snapshot must exist on that node and hold memory (asked of the node's agent).
The clone gets the source's spec and hypervisor and is pinned to the source's node, where the
snapshot's files are (the node links them, `hypervisor/firecracker/clones.py`). Bad input is
INVALID_ARGUMENT / NOT_FOUND naming the field, and nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from plasmavmc import validation
from plasmavmc.core.context import Core, VmRef
from plasmavmc.errors import InvalidArgument, InvalidState, NotFound
from plasmavmc.types.vm import CloneSource, HypervisorType, VirtualMachine

if TYPE_CHECKING:
    from plasmavmc.core.vms.lifecycle import CreateVm

FIELD = "source_snapshot"


async def resolve(core: Core, req: CreateVm) -> tuple[CreateVm, asyncio.Task[None]]:
    """`req` as the create of a clone of its `source_snapshot` (see the module docstring), and the check
    of the snapshot on the source's node, running: the caller awaits it before anything is written (it
    overlaps the caller's own checks and reads), or cancels it (`abandon`)."""
    src = req.source_snapshot
    assert src is not None
    if req.spec_given:
        raise InvalidArgument("spec", "leave spec unset when cloning: a clone's spec is its source's")
    if req.hypervisor_given and req.hypervisor is not HypervisorType.FIRECRACKER:
        raise InvalidArgument("hypervisor", "only Firecracker VMs can be cloned from a snapshot")
    if not src.vm_id:
        raise InvalidArgument(f"{FIELD}.vm_id", "required: the id or name of the VM the snapshot is of")
    validation.device_id(src.snapshot_id, f"{FIELD}.snapshot_id")
    source = (await core.find_vm(VmRef(req.org_id, req.project_id, src.vm_id))).value
    if source.hypervisor is not HypervisorType.FIRECRACKER:
        raise InvalidArgument(f"{FIELD}.vm_id", f"VM {source.name} is {source.hypervisor.value}: only Firecracker "
                                                "VMs can be cloned from a snapshot")
    if source.spec.network:
        raise InvalidArgument(f"{FIELD}.vm_id", f"VM {source.name} has NICs: clones would share its MAC and tap")
    if source.node_id is None:
        raise InvalidState(f"VM {source.name} is not on a node", field=f"{FIELD}.vm_id")
    checking = asyncio.create_task(_check_snapshot(core, source, src.snapshot_id))
    return replace(req, spec=source.spec, hypervisor=HypervisorType.FIRECRACKER, node_id=source.node_id,
                   source_snapshot=CloneSource(vm_id=source.id, snapshot_id=src.snapshot_id)), checking


async def _check_snapshot(core: Core, source: VirtualMachine, snapshot_id: str) -> None:
    """The snapshot exists on the source's node and holds memory (asked of its agent)."""
    snaps = await (await core.agent_for(source)).snapshots(source.id)
    found = next((s for s in snaps if s.id == snapshot_id), None)
    if found is None:
        raise NotFound(f"VM {source.name} has no snapshot {snapshot_id}", field=f"{FIELD}.snapshot_id")
    if not found.memory:
        raise InvalidArgument(f"{FIELD}.snapshot_id", f"snapshot {snapshot_id} holds disks only: a clone "
                                                      "needs a snapshot taken while the VM ran")


async def abandon(checking: asyncio.Task[None] | None) -> None:
    """A create that failed before it awaited the snapshot's check: end the check, its outcome unused."""
    if checking is not None:
        checking.cancel()
        with contextlib.suppress(BaseException):
            await checking
