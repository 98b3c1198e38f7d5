from plasmavmc.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VmEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VM_EVENT_TYPE_UNSPECIFIED: _ClassVar[VmEventType]
    VM_EVENT_TYPE_INITIAL: _ClassVar[VmEventType]
    VM_EVENT_TYPE_UPDATED: _ClassVar[VmEventType]
    VM_EVENT_TYPE_STATE_CHANGED: _ClassVar[VmEventType]
    VM_EVENT_TYPE_DELETED: _ClassVar[VmEventType]
    VM_EVENT_TYPE_CREATED: _ClassVar[VmEventType]
    VM_EVENT_TYPE_OPERATION: _ClassVar[VmEventType]
    VM_EVENT_TYPE_FAILED: _ClassVar[VmEventType]
    VM_EVENT_TYPE_CONDITION_CHANGED: _ClassVar[VmEventType]
VM_EVENT_TYPE_UNSPECIFIED: VmEventType
VM_EVENT_TYPE_INITIAL: VmEventType
VM_EVENT_TYPE_UPDATED: VmEventType
VM_EVENT_TYPE_STATE_CHANGED: VmEventType
VM_EVENT_TYPE_DELETED: VmEventType
VM_EVENT_TYPE_CREATED: VmEventType
VM_EVENT_TYPE_OPERATION: VmEventType
VM_EVENT_TYPE_FAILED: VmEventType
VM_EVENT_TYPE_CONDITION_CHANGED: VmEventType

class VmRef(_message.Message):
    __slots__ = ("org_id", "project_id", "vm_id")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    vm_id: str
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., vm_id: _Optional[str] = ...) -> None: ...

class CreateVmRequest(_message.Message):
    __slots__ = ("name", "org_id", "project_id", "spec", "hypervisor", "metadata", "labels", "source_snapshot", "start")
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
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    HYPERVISOR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    name: str
    org_id: str
    project_id: str
    spec: _types_pb2.VmSpec
    hypervisor: _types_pb2.HypervisorType
    metadata: _containers.ScalarMap[str, str]
    labels: _containers.ScalarMap[str, str]
    source_snapshot: _types_pb2.CloneSource
    start: bool
    def __init__(self, name: _Optional[str] = ..., org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., spec: _Optional[_Union[_types_pb2.VmSpec, _Mapping]] = ..., hypervisor: _Optional[_Union[_types_pb2.HypervisorType, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., source_snapshot: _Optional[_Union[_types_pb2.CloneSource, _Mapping]] = ..., start: _Optional[bool] = ...) -> None: ...

class GetVmRequest(_message.Message):
    __slots__ = ("vm",)
    VM_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ...) -> None: ...

class ListVmsRequest(_message.Message):
    __slots__ = ("org_id", "project_id", "page_size", "page_token", "all_projects", "states", "node_ids", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    page_size: int
    page_token: str
    all_projects: bool
    states: _containers.RepeatedScalarFieldContainer[_types_pb2.VmState]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., all_projects: _Optional[bool] = ..., states: _Optional[_Iterable[_Union[_types_pb2.VmState, str]]] = ..., node_ids: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListVmsResponse(_message.Message):
    __slots__ = ("vms", "next_page_token")
    VMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    vms: _containers.RepeatedCompositeFieldContainer[_types_pb2.VirtualMachine]
    next_page_token: str
    def __init__(self, vms: _Optional[_Iterable[_Union[_types_pb2.VirtualMachine, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateVmRequest(_message.Message):
    __slots__ = ("vm", "labels", "update_labels", "metadata", "update_metadata", "vcpus", "memory_mib", "disk_sizes", "restart_policy")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VM_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_LABELS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    UPDATE_METADATA_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    DISK_SIZES_FIELD_NUMBER: _ClassVar[int]
    RESTART_POLICY_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    labels: _containers.ScalarMap[str, str]
    update_labels: bool
    metadata: _containers.ScalarMap[str, str]
    update_metadata: bool
    vcpus: int
    memory_mib: int
    disk_sizes: _containers.RepeatedCompositeFieldContainer[DiskSize]
    restart_policy: _types_pb2.RestartPolicy
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., update_labels: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ..., update_metadata: _Optional[bool] = ..., vcpus: _Optional[int] = ..., memory_mib: _Optional[int] = ..., disk_sizes: _Optional[_Iterable[_Union[DiskSize, _Mapping]]] = ..., restart_policy: _Optional[_Union[_types_pb2.RestartPolicy, str]] = ...) -> None: ...

class DiskSize(_message.Message):
    __slots__ = ("disk_id", "size_gib")
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GIB_FIELD_NUMBER: _ClassVar[int]
    disk_id: str
    size_gib: int
    def __init__(self, disk_id: _Optional[str] = ..., size_gib: _Optional[int] = ...) -> None: ...

class DeleteVmRequest(_message.Message):
    __slots__ = ("vm", "force")
    VM_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    force: bool
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., force: _Optional[bool] = ...) -> None: ...

class StartVmRequest(_message.Message):
    __slots__ = ("vm",)
    VM_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ...) -> None: ...

class StopVmRequest(_message.Message):
    __slots__ = ("vm", "force", "timeout_seconds")
    VM_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    force: bool
    timeout_seconds: int
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., force: _Optional[bool] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class RebootVmRequest(_message.Message):
    __slots__ = ("vm",)
    VM_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ...) -> None: ...

class ResetVmRequest(_message.Message):
    __slots__ = ("vm",)
    VM_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ...) -> None: ...

class AttachDiskRequest(_message.Message):
    __slots__ = ("vm", "disk")
    VM_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    disk: _types_pb2.DiskSpec
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., disk: _Optional[_Union[_types_pb2.DiskSpec, _Mapping]] = ...) -> None: ...

class DetachDiskRequest(_message.Message):
    __slots__ = ("vm", "disk_id")
    VM_FIELD_NUMBER: _ClassVar[int]
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    disk_id: str
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., disk_id: _Optional[str] = ...) -> None: ...

class AttachNicRequest(_message.Message):
    __slots__ = ("vm", "nic")
    VM_FIELD_NUMBER: _ClassVar[int]
    NIC_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    nic: _types_pb2.NetworkSpec
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., nic: _Optional[_Union[_types_pb2.NetworkSpec, _Mapping]] = ...) -> None: ...

class DetachNicRequest(_message.Message):
    __slots__ = ("vm", "nic_id")
    VM_FIELD_NUMBER: _ClassVar[int]
    NIC_ID_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    nic_id: str
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., nic_id: _Optional[str] = ...) -> None: ...

class GetConsoleRequest(_message.Message):
    __slots__ = ("vm", "console_type", "follow")
    VM_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_TYPE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    console_type: _types_pb2.ConsoleType
    follow: bool
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., console_type: _Optional[_Union[_types_pb2.ConsoleType, str]] = ..., follow: _Optional[bool] = ...) -> None: ...

class ConsoleData(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class RunVmResponse(_message.Message):
    __slots__ = ("vm", "console")
    VM_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_FIELD_NUMBER: _ClassVar[int]
    vm: _types_pb2.VirtualMachine
    console: bytes
    def __init__(self, vm: _Optional[_Union[_types_pb2.VirtualMachine, _Mapping]] = ..., console: _Optional[bytes] = ...) -> None: ...

class WatchVmRequest(_message.Message):
    __slots__ = ("vm", "send_initial", "start_revision", "history_only")
    VM_FIELD_NUMBER: _ClassVar[int]
    SEND_INITIAL_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ONLY_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    send_initial: bool
    start_revision: int
    history_only: bool
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., send_initial: _Optional[bool] = ..., start_revision: _Optional[int] = ..., history_only: _Optional[bool] = ...) -> None: ...

class VmEvent(_message.Message):
    __slots__ = ("type", "previous_state", "state", "vm", "revision", "timestamp", "reason", "message", "actor", "vm_id", "id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VM_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    type: VmEventType
    previous_state: _types_pb2.VmState
    state: _types_pb2.VmState
    vm: _types_pb2.VirtualMachine
    revision: int
    timestamp: int
    reason: str
    message: str
    actor: str
    vm_id: str
    id: str
    def __init__(self, type: _Optional[_Union[VmEventType, str]] = ..., previous_state: _Optional[_Union[_types_pb2.VmState, str]] = ..., state: _Optional[_Union[_types_pb2.VmState, str]] = ..., vm: _Optional[_Union[_types_pb2.VirtualMachine, _Mapping]] = ..., revision: _Optional[int] = ..., timestamp: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., actor: _Optional[str] = ..., vm_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class VmSnapshot(_message.Message):
    __slots__ = ("id", "created_at", "memory", "disk_ids")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DISK_IDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_at: int
    memory: bool
    disk_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., created_at: _Optional[int] = ..., memory: _Optional[bool] = ..., disk_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SnapshotVmRequest(_message.Message):
    __slots__ = ("vm", "snapshot_id")
    VM_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    snapshot_id: str
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., snapshot_id: _Optional[str] = ...) -> None: ...

class RestoreVmRequest(_message.Message):
    __slots__ = ("vm", "snapshot_id")
    VM_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    snapshot_id: str
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., snapshot_id: _Optional[str] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("vm",)
    VM_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[VmSnapshot]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[VmSnapshot, _Mapping]]] = ...) -> None: ...

class DeleteSnapshotRequest(_message.Message):
    __slots__ = ("vm", "snapshot_id")
    VM_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    vm: VmRef
    snapshot_id: str
    def __init__(self, vm: _Optional[_Union[VmRef, _Mapping]] = ..., snapshot_id: _Optional[str] = ...) -> None: ...
