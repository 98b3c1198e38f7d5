from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VmState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VM_STATE_UNSPECIFIED: _ClassVar[VmState]
    VM_STATE_PENDING: _ClassVar[VmState]
    VM_STATE_CREATING: _ClassVar[VmState]
    VM_STATE_STOPPED: _ClassVar[VmState]
    VM_STATE_STARTING: _ClassVar[VmState]
    VM_STATE_RUNNING: _ClassVar[VmState]
    VM_STATE_STOPPING: _ClassVar[VmState]
    VM_STATE_MIGRATING: _ClassVar[VmState]
    VM_STATE_ERROR: _ClassVar[VmState]
    VM_STATE_FAILED: _ClassVar[VmState]
    VM_STATE_DELETED: _ClassVar[VmState]

class HypervisorType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HYPERVISOR_TYPE_UNSPECIFIED: _ClassVar[HypervisorType]
    HYPERVISOR_TYPE_KVM: _ClassVar[HypervisorType]
    HYPERVISOR_TYPE_FIRECRACKER: _ClassVar[HypervisorType]
    HYPERVISOR_TYPE_MVISOR: _ClassVar[HypervisorType]
    HYPERVISOR_TYPE_SIMULATED: _ClassVar[HypervisorType]

class DiskBus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISK_BUS_UNSPECIFIED: _ClassVar[DiskBus]
    DISK_BUS_VIRTIO: _ClassVar[DiskBus]
    DISK_BUS_SCSI: _ClassVar[DiskBus]
    DISK_BUS_IDE: _ClassVar[DiskBus]

class DiskCache(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISK_CACHE_UNSPECIFIED: _ClassVar[DiskCache]
    DISK_CACHE_NONE: _ClassVar[DiskCache]
    DISK_CACHE_WRITEBACK: _ClassVar[DiskCache]
    DISK_CACHE_WRITETHROUGH: _ClassVar[DiskCache]

class NicModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NIC_MODEL_UNSPECIFIED: _ClassVar[NicModel]
    NIC_MODEL_VIRTIO_NET: _ClassVar[NicModel]
    NIC_MODEL_E1000: _ClassVar[NicModel]

class RestartPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESTART_POLICY_UNSPECIFIED: _ClassVar[RestartPolicy]
    RESTART_POLICY_NEVER: _ClassVar[RestartPolicy]
    RESTART_POLICY_ON_FAILURE: _ClassVar[RestartPolicy]
    RESTART_POLICY_ALWAYS: _ClassVar[RestartPolicy]

class ConsoleType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSOLE_TYPE_UNSPECIFIED: _ClassVar[ConsoleType]
    CONSOLE_TYPE_SERIAL: _ClassVar[ConsoleType]
    CONSOLE_TYPE_VNC: _ClassVar[ConsoleType]
VM_STATE_UNSPECIFIED: VmState
VM_STATE_PENDING: VmState
VM_STATE_CREATING: VmState
VM_STATE_STOPPED: VmState
VM_STATE_STARTING: VmState
VM_STATE_RUNNING: VmState
VM_STATE_STOPPING: VmState
VM_STATE_MIGRATING: VmState
VM_STATE_ERROR: VmState
VM_STATE_FAILED: VmState
VM_STATE_DELETED: VmState
HYPERVISOR_TYPE_UNSPECIFIED: HypervisorType
HYPERVISOR_TYPE_KVM: HypervisorType
HYPERVISOR_TYPE_FIRECRACKER: HypervisorType
HYPERVISOR_TYPE_MVISOR: HypervisorType
HYPERVISOR_TYPE_SIMULATED: HypervisorType
DISK_BUS_UNSPECIFIED: DiskBus
DISK_BUS_VIRTIO: DiskBus
DISK_BUS_SCSI: DiskBus
DISK_BUS_IDE: DiskBus
DISK_CACHE_UNSPECIFIED: DiskCache
DISK_CACHE_NONE: DiskCache
DISK_CACHE_WRITEBACK: DiskCache
DISK_CACHE_WRITETHROUGH: DiskCache
NIC_MODEL_UNSPECIFIED: NicModel
NIC_MODEL_VIRTIO_NET: NicModel
NIC_MODEL_E1000: NicModel
RESTART_POLICY_UNSPECIFIED: RestartPolicy
RESTART_POLICY_NEVER: RestartPolicy
RESTART_POLICY_ON_FAILURE: RestartPolicy
RESTART_POLICY_ALWAYS: RestartPolicy
CONSOLE_TYPE_UNSPECIFIED: ConsoleType
CONSOLE_TYPE_SERIAL: ConsoleType
CONSOLE_TYPE_VNC: ConsoleType

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CpuSpec(_message.Message):
    __slots__ = ("vcpus", "cores_per_socket", "sockets", "cpu_model")
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    CORES_PER_SOCKET_FIELD_NUMBER: _ClassVar[int]
    SOCKETS_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    vcpus: int
    cores_per_socket: int
    sockets: int
    cpu_model: str
    def __init__(self, vcpus: _Optional[int] = ..., cores_per_socket: _Optional[int] = ..., sockets: _Optional[int] = ..., cpu_model: _Optional[str] = ...) -> None: ...

class NumaNode(_message.Message):
    __slots__ = ("id", "cpus", "memory_mib")
    ID_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    id: int
    cpus: _containers.RepeatedScalarFieldContainer[int]
    memory_mib: int
    def __init__(self, id: _Optional[int] = ..., cpus: _Optional[_Iterable[int]] = ..., memory_mib: _Optional[int] = ...) -> None: ...

class MemorySpec(_message.Message):
    __slots__ = ("size_mib", "hugepages", "numa_nodes")
    SIZE_MIB_FIELD_NUMBER: _ClassVar[int]
    HUGEPAGES_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODES_FIELD_NUMBER: _ClassVar[int]
    size_mib: int
    hugepages: bool
    numa_nodes: _containers.RepeatedCompositeFieldContainer[NumaNode]
    def __init__(self, size_mib: _Optional[int] = ..., hugepages: _Optional[bool] = ..., numa_nodes: _Optional[_Iterable[_Union[NumaNode, _Mapping]]] = ...) -> None: ...

class DiskSource(_message.Message):
    __slots__ = ("image_id", "volume_id")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    volume_id: str
    def __init__(self, image_id: _Optional[str] = ..., volume_id: _Optional[str] = ...) -> None: ...

class DiskSpec(_message.Message):
    __slots__ = ("id", "source", "size_gib", "bus", "cache", "boot_index")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SIZE_GIB_FIELD_NUMBER: _ClassVar[int]
    BUS_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    BOOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    id: str
    source: DiskSource
    size_gib: int
    bus: DiskBus
    cache: DiskCache
    boot_index: int
    def __init__(self, id: _Optional[str] = ..., source: _Optional[_Union[DiskSource, _Mapping]] = ..., size_gib: _Optional[int] = ..., bus: _Optional[_Union[DiskBus, str]] = ..., cache: _Optional[_Union[DiskCache, str]] = ..., boot_index: _Optional[int] = ...) -> None: ...

class NetworkSpec(_message.Message):
    __slots__ = ("id", "network_id", "mac_address", "ip_address", "model", "security_groups")
    ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    id: str
    network_id: str
    mac_address: str
    ip_address: str
    model: NicModel
    security_groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., network_id: _Optional[str] = ..., mac_address: _Optional[str] = ..., ip_address: _Optional[str] = ..., model: _Optional[_Union[NicModel, str]] = ..., security_groups: _Optional[_Iterable[str]] = ...) -> None: ...

class BootSpec(_message.Message):
    __slots__ = ("kernel_args", "machine_type")
    KERNEL_ARGS_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    kernel_args: str
    machine_type: str
    def __init__(self, kernel_args: _Optional[str] = ..., machine_type: _Optional[str] = ...) -> None: ...

class SecuritySpec(_message.Message):
    __slots__ = ("secure_boot", "tpm")
    SECURE_BOOT_FIELD_NUMBER: _ClassVar[int]
    TPM_FIELD_NUMBER: _ClassVar[int]
    secure_boot: bool
    tpm: bool
    def __init__(self, secure_boot: _Optional[bool] = ..., tpm: _Optional[bool] = ...) -> None: ...

class CloudInitSpec(_message.Message):
    __slots__ = ("user_data", "ssh_authorized_keys", "hostname")
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    SSH_AUTHORIZED_KEYS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    user_data: str
    ssh_authorized_keys: _containers.RepeatedScalarFieldContainer[str]
    hostname: str
    def __init__(self, user_data: _Optional[str] = ..., ssh_authorized_keys: _Optional[_Iterable[str]] = ..., hostname: _Optional[str] = ...) -> None: ...

class VmSpec(_message.Message):
    __slots__ = ("cpu", "memory", "disks", "network", "boot", "security", "placement", "cloud_init", "restart_policy")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    BOOT_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    CLOUD_INIT_FIELD_NUMBER: _ClassVar[int]
    RESTART_POLICY_FIELD_NUMBER: _ClassVar[int]
    cpu: CpuSpec
    memory: MemorySpec
    disks: _containers.RepeatedCompositeFieldContainer[DiskSpec]
    network: _containers.RepeatedCompositeFieldContainer[NetworkSpec]
    boot: BootSpec
    security: SecuritySpec
    placement: PlacementSpec
    cloud_init: CloudInitSpec
    restart_policy: RestartPolicy
    def __init__(self, cpu: _Optional[_Union[CpuSpec, _Mapping]] = ..., memory: _Optional[_Union[MemorySpec, _Mapping]] = ..., disks: _Optional[_Iterable[_Union[DiskSpec, _Mapping]]] = ..., network: _Optional[_Iterable[_Union[NetworkSpec, _Mapping]]] = ..., boot: _Optional[_Union[BootSpec, _Mapping]] = ..., security: _Optional[_Union[SecuritySpec, _Mapping]] = ..., placement: _Optional[_Union[PlacementSpec, _Mapping]] = ..., cloud_init: _Optional[_Union[CloudInitSpec, _Mapping]] = ..., restart_policy: _Optional[_Union[RestartPolicy, str]] = ...) -> None: ...

class Toleration(_message.Message):
    __slots__ = ("key", "value", "effect")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    effect: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ..., effect: _Optional[str] = ...) -> None: ...

class PlacementSpec(_message.Message):
    __slots__ = ("node_selector", "tolerations", "anti_affinity_group", "zone", "rack")
    class NodeSelectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    TOLERATIONS_FIELD_NUMBER: _ClassVar[int]
    ANTI_AFFINITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    RACK_FIELD_NUMBER: _ClassVar[int]
    node_selector: _containers.ScalarMap[str, str]
    tolerations: _containers.RepeatedCompositeFieldContainer[Toleration]
    anti_affinity_group: str
    zone: str
    rack: str
    def __init__(self, node_selector: _Optional[_Mapping[str, str]] = ..., tolerations: _Optional[_Iterable[_Union[Toleration, _Mapping]]] = ..., anti_affinity_group: _Optional[str] = ..., zone: _Optional[str] = ..., rack: _Optional[str] = ...) -> None: ...

class ResourceUsage(_message.Message):
    __slots__ = ("cpu_percent", "memory_used_mib", "disk_read_bytes", "disk_write_bytes", "network_rx_bytes", "network_tx_bytes", "memory_overhead_rss_mib", "memory_overhead_pss_mib", "memory_pss_mib")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_MIB_FIELD_NUMBER: _ClassVar[int]
    DISK_READ_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_WRITE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_OVERHEAD_RSS_MIB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_OVERHEAD_PSS_MIB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PSS_MIB_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_used_mib: int
    disk_read_bytes: int
    disk_write_bytes: int
    network_rx_bytes: int
    network_tx_bytes: int
    memory_overhead_rss_mib: int
    memory_overhead_pss_mib: int
    memory_pss_mib: int
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_used_mib: _Optional[int] = ..., disk_read_bytes: _Optional[int] = ..., disk_write_bytes: _Optional[int] = ..., network_rx_bytes: _Optional[int] = ..., network_tx_bytes: _Optional[int] = ..., memory_overhead_rss_mib: _Optional[int] = ..., memory_overhead_pss_mib: _Optional[int] = ..., memory_pss_mib: _Optional[int] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("type", "status", "reason", "message", "last_transition_at")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_TRANSITION_AT_FIELD_NUMBER: _ClassVar[int]
    type: str
    status: bool
    reason: str
    message: str
    last_transition_at: int
    def __init__(self, type: _Optional[str] = ..., status: _Optional[bool] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., last_transition_at: _Optional[int] = ...) -> None: ...

class VmStatus(_message.Message):
    __slots__ = ("actual_state", "host_pid", "started_at", "ip_addresses", "resource_usage", "last_error", "conditions", "accelerator", "boot", "restarts", "last_restart_at", "restart_due_at", "restart_reason")
    ACTUAL_STATE_FIELD_NUMBER: _ClassVar[int]
    HOST_PID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_USAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_FIELD_NUMBER: _ClassVar[int]
    BOOT_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_RESTART_AT_FIELD_NUMBER: _ClassVar[int]
    RESTART_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    RESTART_REASON_FIELD_NUMBER: _ClassVar[int]
    actual_state: VmState
    host_pid: int
    started_at: int
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    resource_usage: ResourceUsage
    last_error: str
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    accelerator: str
    boot: BootTimeline
    restarts: int
    last_restart_at: int
    restart_due_at: int
    restart_reason: str
    def __init__(self, actual_state: _Optional[_Union[VmState, str]] = ..., host_pid: _Optional[int] = ..., started_at: _Optional[int] = ..., ip_addresses: _Optional[_Iterable[str]] = ..., resource_usage: _Optional[_Union[ResourceUsage, _Mapping]] = ..., last_error: _Optional[str] = ..., conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., accelerator: _Optional[str] = ..., boot: _Optional[_Union[BootTimeline, _Mapping]] = ..., restarts: _Optional[int] = ..., last_restart_at: _Optional[int] = ..., restart_due_at: _Optional[int] = ..., restart_reason: _Optional[str] = ...) -> None: ...

class BootTimeline(_message.Message):
    __slots__ = ("accepted_at", "placed_at", "image_ready_at", "start_requested_at", "process_up_at", "first_output_at", "ready_at")
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    PLACED_AT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_READY_AT_FIELD_NUMBER: _ClassVar[int]
    START_REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    PROCESS_UP_AT_FIELD_NUMBER: _ClassVar[int]
    FIRST_OUTPUT_AT_FIELD_NUMBER: _ClassVar[int]
    READY_AT_FIELD_NUMBER: _ClassVar[int]
    accepted_at: float
    placed_at: float
    image_ready_at: float
    start_requested_at: float
    process_up_at: float
    first_output_at: float
    ready_at: float
    def __init__(self, accepted_at: _Optional[float] = ..., placed_at: _Optional[float] = ..., image_ready_at: _Optional[float] = ..., start_requested_at: _Optional[float] = ..., process_up_at: _Optional[float] = ..., first_output_at: _Optional[float] = ..., ready_at: _Optional[float] = ...) -> None: ...

class VirtualMachine(_message.Message):
    __slots__ = ("id", "name", "org_id", "project_id", "state", "spec", "status", "node_id", "hypervisor", "created_at", "updated_at", "created_by", "metadata", "labels", "source_snapshot")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HYPERVISOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    org_id: str
    project_id: str
    state: VmState
    spec: VmSpec
    status: VmStatus
    node_id: str
    hypervisor: HypervisorType
    created_at: int
    updated_at: int
    created_by: str
    metadata: _containers.ScalarMap[str, str]
    labels: _containers.ScalarMap[str, str]
    source_snapshot: CloneSource
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., state: _Optional[_Union[VmState, str]] = ..., spec: _Optional[_Union[VmSpec, _Mapping]] = ..., status: _Optional[_Union[VmStatus, _Mapping]] = ..., node_id: _Optional[str] = ..., hypervisor: _Optional[_Union[HypervisorType, str]] = ..., created_at: _Optional[int] = ..., updated_at: _Optional[int] = ..., created_by: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., source_snapshot: _Optional[_Union[CloneSource, _Mapping]] = ...) -> None: ...

class CloneSource(_message.Message):
    __slots__ = ("vm_id", "snapshot_id")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    snapshot_id: str
    def __init__(self, vm_id: _Optional[str] = ..., snapshot_id: _Optional[str] = ...) -> None: ...

class ErrorDetail(_message.Message):
    __slots__ = ("code", "field", "retryable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    field: str
    retryable: bool
    def __init__(self, code: _Optional[str] = ..., field: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...
