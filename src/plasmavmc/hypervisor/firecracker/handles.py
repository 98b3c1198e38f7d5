"""A Firecracker VM's handle (`handle.json`): what its details record and the paths they name.

Details: `jailed`, `exec_name`, `jail_id` (only where it differs from the VM id: a VM that took a warm
pool entry keeps the entry's jail, `layout.py`) and, until the word of its claim came, the provisional
mark (`hypervisor/provisional.py`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from plasmavmc.hypervisor.base import VmHandle
from plasmavmc.hypervisor.firecracker.layout import FcPaths
from plasmavmc.hypervisor.provisional import DETAIL as PROVISIONAL
from plasmavmc.types.vm import HypervisorType, VirtualMachine


def new(vm: VirtualMachine, paths: FcPaths, exec_name: str, *, provisional: bool = False) -> VmHandle:
    """The handle of `vm`, whose directory `paths` describes."""
    details = {"jailed": str(paths.jailed).lower(), "exec_name": exec_name}
    if paths.jail_id != vm.id:
        details["jail_id"] = paths.jail_id
    if provisional:
        details[PROVISIONAL] = "true"
    return VmHandle(vm_id=vm.id, backend=HypervisorType.FIRECRACKER, runtime_dir=str(paths.root),
                    name=vm.name, details=details)


def unmarked(handle: VmHandle) -> VmHandle:
    """`handle` without the provisional mark (its claim committed)."""
    return replace(handle, details={k: v for k, v in handle.details.items() if k != PROVISIONAL})


def paths_of(runtime_dir: Path, handle: VmHandle, exec_name: str) -> FcPaths:
    """The paths `handle` names (`exec_name`: the backend's, for a handle that does not record one)."""
    return FcPaths.of(runtime_dir, handle.vm_id, jailed=handle.details.get("jailed") == "true",
                      exec_name=handle.details.get("exec_name", exec_name), jail_id=handle.details.get("jail_id"))
