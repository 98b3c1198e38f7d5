"""The VirtualMachine resource and its parts (spec §3.1, §3.3, §4.2).

Field names match the protobuf messages one to one, so `wire/convert.py` maps them generically; lists are
tuples so that records stay immutable; changes make a new record with `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum

from plasmavmc.types.states import VmState


class HypervisorType(StrEnum):
    KVM = "kvm"
    FIRECRACKER = "firecracker"
    MVISOR = "mvisor"
    SIMULATED = "simulated"  # scale tests and benchmarks only; never boots anything


class DiskBus(StrEnum):
    VIRTIO = "virtio"
    SCSI = "scsi"
    IDE = "ide"


class DiskCache(StrEnum):
    NONE = "none"
    WRITEBACK = "writeback"
    WRITETHROUGH = "writethrough"


class NicModel(StrEnum):
    VIRTIO_NET = "virtio_net"
    E1000 = "e1000"


class RestartPolicy(StrEnum):
    """What happens when a VM's hypervisor ends without an API call asking for it (core/vms/restarts.py)."""

    NEVER = "never"  # stays down (the default: nothing is started behind the user's back)
    ON_FAILURE = "on-failure"  # restarted after a crash or a host reboot; a guest power-off stays STOPPED
    ALWAYS = "always"  # restarted after a crash, a host reboot or a guest power-off


class ConsoleType(StrEnum):
    SERIAL = "serial"
    VNC = "vnc"


@dataclass(frozen=True)
class CpuSpec:
    vcpus: int = 1
    cores_per_socket: int = 0  # 0: derived (vcpus / sockets)
    sockets: int = 1
    cpu_model: str | None = None


@dataclass(frozen=True)
class NumaNode:
    id: int = 0
    cpus: tuple[int, ...] = ()
    memory_mib: int = 0


@dataclass(frozen=True)
class MemorySpec:
    size_mib: int = 256
    hugepages: bool = False
    numa_nodes: tuple[NumaNode, ...] = ()


@dataclass(frozen=True)
class DiskSource:
    """Exactly one of the two is set (a protobuf oneof)."""

    image_id: str | None = None
    volume_id: str | None = None


@dataclass(frozen=True)
class DiskSpec:
    id: str = "root"
    source: DiskSource = field(default_factory=DiskSource)
    size_gib: int = 1
    bus: DiskBus = DiskBus.VIRTIO
    cache: DiskCache = DiskCache.NONE
    boot_index: int | None = None


@dataclass(frozen=True)
class NetworkSpec:
    id: str = "nic0"
    network_id: str = "default"
    mac_address: str | None = None
    ip_address: str | None = None
    model: NicModel = NicModel.VIRTIO_NET
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class BootSpec:
    kernel_args: str = ""  # appended to the image's kernel command line (direct kernel boot)
    machine_type: str = ""  # backend hint: "" = backend default; QEMU: "microvm" or "q35"


@dataclass(frozen=True)
class SecuritySpec:
    secure_boot: bool = False
    tpm: bool = False


@dataclass(frozen=True)
class Toleration:
    """Lets a VM land on a node with a matching taint: `value` "" matches any value, `effect` "" any effect."""

    key: str = ""
    value: str = ""
    effect: str = ""


@dataclass(frozen=True)
class PlacementSpec:
    """Where the scheduler may and prefers to put the VM (scheduler/filters, scheduler/scorers).

    `node_selector`: node labels that must all match (AffinityFilter). `tolerations`: taints the VM
    accepts (TaintFilter). `anti_affinity_group`: VMs of one project with the same group never share a
    node (AntiAffinityFilter). `zone` / `rack`: preferred values of the nodes' `zone` / `rack` labels
    (LocalityScorer).
    """

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    anti_affinity_group: str = ""
    zone: str = ""
    rack: str = ""


@dataclass(frozen=True)
class CloudInitSpec:
    """The cloud-init NoCloud seed of a VM (`hypervisor/cloudinit.py` renders it on the node).

    `user_data` is a secret: the public API renders it as "" (`without_secrets`, `api/vm_service.vm_msg`)."""

    user_data: str = ""
    ssh_authorized_keys: tuple[str, ...] = ()
    hostname: str = ""  # "" = the VM's name


@dataclass(frozen=True)
class VmSpec:
    cpu: CpuSpec = field(default_factory=CpuSpec)
    memory: MemorySpec = field(default_factory=MemorySpec)
    disks: tuple[DiskSpec, ...] = ()
    network: tuple[NetworkSpec, ...] = ()
    boot: BootSpec = field(default_factory=BootSpec)
    security: SecuritySpec = field(default_factory=SecuritySpec)
    placement: PlacementSpec = field(default_factory=PlacementSpec)
    cloud_init: CloudInitSpec | None = None  # None: no seed disk
    restart_policy: RestartPolicy = RestartPolicy.NEVER


@dataclass(frozen=True)
class VmResize:
    """A resize of a stopped VM (UpdateVm, and the agent's ResizeVm); 0 / absent: unchanged."""

    vcpus: int = 0
    memory_mib: int = 0
    disk_sizes: dict[str, int] = field(default_factory=dict)  # disk id -> new size (GiB), only larger

    def __bool__(self) -> bool:
        return bool(self.vcpus or self.memory_mib or self.disk_sizes)


@dataclass(frozen=True)
class ResourceUsage:
    cpu_percent: float = 0.0
    memory_used_mib: int = 0
    disk_read_bytes: int = 0
    disk_write_bytes: int = 0
    network_rx_bytes: int = 0
    network_tx_bytes: int = 0
    memory_overhead_rss_mib: int = 0  # host memory beyond the guest RAM resident (hypervisor/footprint.py)
    memory_overhead_pss_mib: int = 0
    memory_pss_mib: int = 0


@dataclass(frozen=True)
class Condition:
    type: str = ""
    status: bool = False
    reason: str = ""
    message: str = ""
    last_transition_at: int = 0


@dataclass(frozen=True)
class BootTimeline:
    """When each step of the VM's last start happened (unix seconds; 0: not reached). The control plane
    writes the first four, the node agent the last three (see proto `BootTimeline`)."""

    accepted_at: float = 0.0
    placed_at: float = 0.0
    image_ready_at: float = 0.0
    start_requested_at: float = 0.0
    process_up_at: float = 0.0
    first_output_at: float = 0.0
    ready_at: float = 0.0

    def steps(self) -> list[tuple[str, float]]:
        """(step, seconds since the previous step) for every step reached, in order."""
        marks = [("placed", self.placed_at), ("image_ready", self.image_ready_at),
                 ("start_requested", self.start_requested_at), ("process_up", self.process_up_at),
                 ("first_output", self.first_output_at), ("ready", self.ready_at)]
        out, last = [], self.accepted_at
        for name, at in marks:
            if at <= 0 or last <= 0:
                break
            out.append((name, at - last))
            last = at
        return out


@dataclass(frozen=True)
class VmStatus:
    actual_state: VmState = VmState.PENDING
    host_pid: int | None = None
    started_at: int | None = None
    ip_addresses: tuple[str, ...] = ()
    resource_usage: ResourceUsage = field(default_factory=ResourceUsage)
    last_error: str | None = None
    conditions: tuple[Condition, ...] = ()
    accelerator: str = ""  # "kvm" or "tcg" for QEMU: what the backend actually used
    boot: BootTimeline = field(default_factory=BootTimeline)
    restarts: int = 0  # automatic restarts in a row (restart policy); back to 0 after a stable run
    last_restart_at: int = 0  # unix seconds of the last automatic restart (0: none)
    restart_due_at: int = 0  # an automatic restart is scheduled for then (0: none)
    restart_reason: str = ""  # why: RestartedAfterCrash, RestartedAfterHostReboot, RestartedAfterPowerOff


@dataclass(frozen=True)
class CloneSource:
    """A VM's snapshot another VM is cloned from (CreateVm `source_snapshot`, a spec extension).
    In a request `vm_id` may be the source's id or name (same org/project); in a record it is the id."""

    vm_id: str = ""
    snapshot_id: str = ""


@dataclass(frozen=True)
class VirtualMachine:
    id: str
    name: str
    org_id: str
    project_id: str
    state: VmState = VmState.PENDING
    spec: VmSpec = field(default_factory=VmSpec)
    status: VmStatus = field(default_factory=VmStatus)
    node_id: str | None = None
    hypervisor: HypervisorType = HypervisorType.KVM
    created_at: int = 0
    updated_at: int = 0
    created_by: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    source_snapshot: CloneSource | None = None  # set on a clone (hypervisor/firecracker/clones.py)


def without_secrets(vm: VirtualMachine) -> VirtualMachine:
    """`vm` as the public API shows it to anyone: the cloud-init user-data (a secret) left out."""
    seed = vm.spec.cloud_init
    if seed is None or not seed.user_data:
        return vm
    spec = dataclasses.replace(vm.spec, cloud_init=dataclasses.replace(seed, user_data=""))
    return dataclasses.replace(vm, spec=spec)
