from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResourceLimits(_message.Message):
    __slots__ = ("max_vms", "max_vcpus", "max_memory_gib", "max_storage_gib", "max_images", "max_networks")
    MAX_VMS_FIELD_NUMBER: _ClassVar[int]
    MAX_VCPUS_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_GIB_FIELD_NUMBER: _ClassVar[int]
    MAX_STORAGE_GIB_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    max_vms: int
    max_vcpus: int
    max_memory_gib: int
    max_storage_gib: int
    max_images: int
    max_networks: int
    def __init__(self, max_vms: _Optional[int] = ..., max_vcpus: _Optional[int] = ..., max_memory_gib: _Optional[int] = ..., max_storage_gib: _Optional[int] = ..., max_images: _Optional[int] = ..., max_networks: _Optional[int] = ...) -> None: ...

class QuotaUsage(_message.Message):
    __slots__ = ("vms", "vcpus", "memory_mib", "storage_gib", "images", "networks")
    VMS_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    STORAGE_GIB_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    vms: int
    vcpus: int
    memory_mib: int
    storage_gib: int
    images: int
    networks: int
    def __init__(self, vms: _Optional[int] = ..., vcpus: _Optional[int] = ..., memory_mib: _Optional[int] = ..., storage_gib: _Optional[int] = ..., images: _Optional[int] = ..., networks: _Optional[int] = ...) -> None: ...

class Quota(_message.Message):
    __slots__ = ("org_id", "project_id", "limits", "usage")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    limits: ResourceLimits
    usage: QuotaUsage
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., limits: _Optional[_Union[ResourceLimits, _Mapping]] = ..., usage: _Optional[_Union[QuotaUsage, _Mapping]] = ...) -> None: ...

class GetQuotaRequest(_message.Message):
    __slots__ = ("org_id", "project_id")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class SetQuotaRequest(_message.Message):
    __slots__ = ("org_id", "project_id", "limits")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    limits: ResourceLimits
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., limits: _Optional[_Union[ResourceLimits, _Mapping]] = ...) -> None: ...
