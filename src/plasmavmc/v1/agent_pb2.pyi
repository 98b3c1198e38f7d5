from plasmavmc.v1 import types_pb2 as _types_pb2
from plasmavmc.v1 import image_pb2 as _image_pb2
from plasmavmc.v1 import network_pb2 as _network_pb2
from plasmavmc.v1 import node_pb2 as _node_pb2
from plasmavmc.v1 import vm_pb2 as _vm_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VmExitKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VM_EXIT_KIND_UNSPECIFIED: _ClassVar[VmExitKind]
    VM_EXIT_KIND_REQUESTED: _ClassVar[VmExitKind]
    VM_EXIT_KIND_GUEST_POWEROFF: _ClassVar[VmExitKind]
    VM_EXIT_KIND_CRASHED: _ClassVar[VmExitKind]
    VM_EXIT_KIND_HOST_REBOOT: _ClassVar[VmExitKind]
VM_EXIT_KIND_UNSPECIFIED: VmExitKind
VM_EXIT_KIND_REQUESTED: VmExitKind
VM_EXIT_KIND_GUEST_POWEROFF: VmExitKind
VM_EXIT_KIND_CRASHED: VmExitKind
VM_EXIT_KIND_HOST_REBOOT: VmExitKind

class VmHandle(_message.Message):
    __slots__ = ("vm_id", "backend", "runtime_dir", "name", "details", "started")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_DIR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    backend: _types_pb2.HypervisorType
    runtime_dir: str
    name: str
    details: _containers.ScalarMap[str, str]
    started: _types_pb2.VmStatus
    def __init__(self, vm_id: _Optional[str] = ..., backend: _Optional[_Union[_types_pb2.HypervisorType, str]] = ..., runtime_dir: _Optional[str] = ..., name: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ..., started: _Optional[_Union[_types_pb2.VmStatus, _Mapping]] = ...) -> None: ...

class RunVmReply(_message.Message):
    __slots__ = ("handle", "console")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_FIELD_NUMBER: _ClassVar[int]
    handle: VmHandle
    console: bytes
    def __init__(self, handle: _Optional[_Union[VmHandle, _Mapping]] = ..., console: _Optional[bytes] = ...) -> None: ...

class CreateVmRequest(_message.Message):
    __slots__ = ("vm", "images", "ports", "start", "provisional", "committed")
    VM_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    PROVISIONAL_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    vm: _types_pb2.VirtualMachine
    images: _containers.RepeatedCompositeFieldContainer[_image_pb2.Image]
    ports: _containers.RepeatedCompositeFieldContainer[_network_pb2.NetworkPort]
    start: bool
    provisional: bool
    committed: bool
    def __init__(self, vm: _Optional[_Union[_types_pb2.VirtualMachine, _Mapping]] = ..., images: _Optional[_Iterable[_Union[_image_pb2.Image, _Mapping]]] = ..., ports: _Optional[_Iterable[_Union[_network_pb2.NetworkPort, _Mapping]]] = ..., start: _Optional[bool] = ..., provisional: _Optional[bool] = ..., committed: _Optional[bool] = ...) -> None: ...

class StartVmRequest(_message.Message):
    __slots__ = ("vm_id",)
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    def __init__(self, vm_id: _Optional[str] = ...) -> None: ...

class StopVmRequest(_message.Message):
    __slots__ = ("vm_id", "timeout_seconds", "force")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    timeout_seconds: int
    force: bool
    def __init__(self, vm_id: _Optional[str] = ..., timeout_seconds: _Optional[int] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteVmRequest(_message.Message):
    __slots__ = ("vm_id",)
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    def __init__(self, vm_id: _Optional[str] = ...) -> None: ...

class GetVmStatusRequest(_message.Message):
    __slots__ = ("vm_id",)
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    def __init__(self, vm_id: _Optional[str] = ...) -> None: ...

class VmOperationRequest(_message.Message):
    __slots__ = ("vm_id",)
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    def __init__(self, vm_id: _Optional[str] = ...) -> None: ...

class StreamConsoleRequest(_message.Message):
    __slots__ = ("vm_id", "follow")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    follow: bool
    def __init__(self, vm_id: _Optional[str] = ..., follow: _Optional[bool] = ...) -> None: ...

class ConsoleInput(_message.Message):
    __slots__ = ("vm_id", "console_type", "data")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    console_type: _types_pb2.ConsoleType
    data: bytes
    def __init__(self, vm_id: _Optional[str] = ..., console_type: _Optional[_Union[_types_pb2.ConsoleType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class AttachDiskRequest(_message.Message):
    __slots__ = ("vm_id", "disk", "image", "org_id")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    disk: _types_pb2.DiskSpec
    image: _image_pb2.Image
    org_id: str
    def __init__(self, vm_id: _Optional[str] = ..., disk: _Optional[_Union[_types_pb2.DiskSpec, _Mapping]] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., org_id: _Optional[str] = ...) -> None: ...

class ResizeVmRequest(_message.Message):
    __slots__ = ("vm_id", "vcpus", "memory_mib", "disk_sizes")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    DISK_SIZES_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    vcpus: int
    memory_mib: int
    disk_sizes: _containers.RepeatedCompositeFieldContainer[_vm_pb2.DiskSize]
    def __init__(self, vm_id: _Optional[str] = ..., vcpus: _Optional[int] = ..., memory_mib: _Optional[int] = ..., disk_sizes: _Optional[_Iterable[_Union[_vm_pb2.DiskSize, _Mapping]]] = ...) -> None: ...

class AttachNicRequest(_message.Message):
    __slots__ = ("vm_id", "nic", "port")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    NIC_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    nic: _types_pb2.NetworkSpec
    port: _network_pb2.NetworkPort
    def __init__(self, vm_id: _Optional[str] = ..., nic: _Optional[_Union[_types_pb2.NetworkSpec, _Mapping]] = ..., port: _Optional[_Union[_network_pb2.NetworkPort, _Mapping]] = ...) -> None: ...

class UpdatePortSecurityRequest(_message.Message):
    __slots__ = ("port_id", "security_groups")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    port_id: str
    security_groups: _containers.RepeatedCompositeFieldContainer[_network_pb2.SecurityGroup]
    def __init__(self, port_id: _Optional[str] = ..., security_groups: _Optional[_Iterable[_Union[_network_pb2.SecurityGroup, _Mapping]]] = ...) -> None: ...

class FdbEntry(_message.Message):
    __slots__ = ("mac_address", "remote")
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    mac_address: str
    remote: str
    def __init__(self, mac_address: _Optional[str] = ..., remote: _Optional[str] = ...) -> None: ...

class UpdateNetworkPeersRequest(_message.Message):
    __slots__ = ("network", "peers", "fdb", "revision")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    FDB_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    network: _network_pb2.Network
    peers: _containers.RepeatedScalarFieldContainer[str]
    fdb: _containers.RepeatedCompositeFieldContainer[FdbEntry]
    revision: int
    def __init__(self, network: _Optional[_Union[_network_pb2.Network, _Mapping]] = ..., peers: _Optional[_Iterable[str]] = ..., fdb: _Optional[_Iterable[_Union[FdbEntry, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class DetachDeviceRequest(_message.Message):
    __slots__ = ("vm_id", "device_id")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    device_id: str
    def __init__(self, vm_id: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("vm_id", "snapshot_id")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    snapshot_id: str
    def __init__(self, vm_id: _Optional[str] = ..., snapshot_id: _Optional[str] = ...) -> None: ...

class ExportDiskRequest(_message.Message):
    __slots__ = ("vm_id", "disk_id")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    disk_id: str
    def __init__(self, vm_id: _Optional[str] = ..., disk_id: _Optional[str] = ...) -> None: ...

class ExportDiskChunk(_message.Message):
    __slots__ = ("chunk", "offset", "total_size", "format")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    offset: int
    total_size: int
    format: str
    def __init__(self, chunk: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ..., format: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("node", "vms", "delta", "gone_vm_ids", "digest", "vm_count", "node_digest")
    NODE_FIELD_NUMBER: _ClassVar[int]
    VMS_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    GONE_VM_IDS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    VM_COUNT_FIELD_NUMBER: _ClassVar[int]
    NODE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    node: _node_pb2.Node
    vms: _containers.RepeatedCompositeFieldContainer[VmReport]
    delta: bool
    gone_vm_ids: _containers.RepeatedScalarFieldContainer[str]
    digest: int
    vm_count: int
    node_digest: int
    def __init__(self, node: _Optional[_Union[_node_pb2.Node, _Mapping]] = ..., vms: _Optional[_Iterable[_Union[VmReport, _Mapping]]] = ..., delta: _Optional[bool] = ..., gone_vm_ids: _Optional[_Iterable[str]] = ..., digest: _Optional[int] = ..., vm_count: _Optional[int] = ..., node_digest: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("heartbeat_interval_seconds", "node_state", "resync", "node_digest")
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NODE_STATE_FIELD_NUMBER: _ClassVar[int]
    RESYNC_FIELD_NUMBER: _ClassVar[int]
    NODE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_seconds: int
    node_state: _node_pb2.NodeState
    resync: bool
    node_digest: int
    def __init__(self, heartbeat_interval_seconds: _Optional[int] = ..., node_state: _Optional[_Union[_node_pb2.NodeState, str]] = ..., resync: _Optional[bool] = ..., node_digest: _Optional[int] = ...) -> None: ...

class VmReport(_message.Message):
    __slots__ = ("vm_id", "status", "exit_kind")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_KIND_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    status: _types_pb2.VmStatus
    exit_kind: VmExitKind
    def __init__(self, vm_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.VmStatus, _Mapping]] = ..., exit_kind: _Optional[_Union[VmExitKind, str]] = ...) -> None: ...

class ReportStatusRequest(_message.Message):
    __slots__ = ("node_id", "report")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    report: VmReport
    def __init__(self, node_id: _Optional[str] = ..., report: _Optional[_Union[VmReport, _Mapping]] = ...) -> None: ...
