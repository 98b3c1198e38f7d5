from plasmavmc.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Visibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISIBILITY_UNSPECIFIED: _ClassVar[Visibility]
    VISIBILITY_PUBLIC: _ClassVar[Visibility]
    VISIBILITY_PRIVATE: _ClassVar[Visibility]
    VISIBILITY_SHARED: _ClassVar[Visibility]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_RAW: _ClassVar[ImageFormat]
    IMAGE_FORMAT_QCOW2: _ClassVar[ImageFormat]
    IMAGE_FORMAT_VMDK: _ClassVar[ImageFormat]
    IMAGE_FORMAT_VHD: _ClassVar[ImageFormat]

class ImageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_STATUS_UNSPECIFIED: _ClassVar[ImageStatus]
    IMAGE_STATUS_PENDING: _ClassVar[ImageStatus]
    IMAGE_STATUS_UPLOADING: _ClassVar[ImageStatus]
    IMAGE_STATUS_CONVERTING: _ClassVar[ImageStatus]
    IMAGE_STATUS_AVAILABLE: _ClassVar[ImageStatus]
    IMAGE_STATUS_ERROR: _ClassVar[ImageStatus]
    IMAGE_STATUS_DELETED: _ClassVar[ImageStatus]

class OsType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OS_TYPE_UNSPECIFIED: _ClassVar[OsType]
    OS_TYPE_LINUX: _ClassVar[OsType]
    OS_TYPE_WINDOWS: _ClassVar[OsType]
    OS_TYPE_OTHER: _ClassVar[OsType]

class Architecture(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHITECTURE_UNSPECIFIED: _ClassVar[Architecture]
    ARCHITECTURE_X86_64: _ClassVar[Architecture]
    ARCHITECTURE_AARCH64: _ClassVar[Architecture]
VISIBILITY_UNSPECIFIED: Visibility
VISIBILITY_PUBLIC: Visibility
VISIBILITY_PRIVATE: Visibility
VISIBILITY_SHARED: Visibility
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_RAW: ImageFormat
IMAGE_FORMAT_QCOW2: ImageFormat
IMAGE_FORMAT_VMDK: ImageFormat
IMAGE_FORMAT_VHD: ImageFormat
IMAGE_STATUS_UNSPECIFIED: ImageStatus
IMAGE_STATUS_PENDING: ImageStatus
IMAGE_STATUS_UPLOADING: ImageStatus
IMAGE_STATUS_CONVERTING: ImageStatus
IMAGE_STATUS_AVAILABLE: ImageStatus
IMAGE_STATUS_ERROR: ImageStatus
IMAGE_STATUS_DELETED: ImageStatus
OS_TYPE_UNSPECIFIED: OsType
OS_TYPE_LINUX: OsType
OS_TYPE_WINDOWS: OsType
OS_TYPE_OTHER: OsType
ARCHITECTURE_UNSPECIFIED: Architecture
ARCHITECTURE_X86_64: Architecture
ARCHITECTURE_AARCH64: Architecture

class UrlSource(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    def __init__(self, url: _Optional[str] = ...) -> None: ...

class UploadSource(_message.Message):
    __slots__ = ("storage_path",)
    STORAGE_PATH_FIELD_NUMBER: _ClassVar[int]
    storage_path: str
    def __init__(self, storage_path: _Optional[str] = ...) -> None: ...

class SnapshotSource(_message.Message):
    __slots__ = ("vm_id", "disk_id")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    disk_id: str
    def __init__(self, vm_id: _Optional[str] = ..., disk_id: _Optional[str] = ...) -> None: ...

class ImageSource(_message.Message):
    __slots__ = ("url", "upload", "snapshot")
    URL_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    url: UrlSource
    upload: UploadSource
    snapshot: SnapshotSource
    def __init__(self, url: _Optional[_Union[UrlSource, _Mapping]] = ..., upload: _Optional[_Union[UploadSource, _Mapping]] = ..., snapshot: _Optional[_Union[SnapshotSource, _Mapping]] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("id", "name", "org_id", "visibility", "shared_orgs", "source", "format", "size_bytes", "checksum", "os_type", "os_version", "architecture", "min_disk_gib", "min_memory_mib", "status", "created_at", "updated_at", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SHARED_ORGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    OS_TYPE_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    MIN_DISK_GIB_FIELD_NUMBER: _ClassVar[int]
    MIN_MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    org_id: str
    visibility: Visibility
    shared_orgs: _containers.RepeatedScalarFieldContainer[str]
    source: ImageSource
    format: ImageFormat
    size_bytes: int
    checksum: str
    os_type: OsType
    os_version: str
    architecture: Architecture
    min_disk_gib: int
    min_memory_mib: int
    status: ImageStatus
    created_at: int
    updated_at: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., org_id: _Optional[str] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., shared_orgs: _Optional[_Iterable[str]] = ..., source: _Optional[_Union[ImageSource, _Mapping]] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., size_bytes: _Optional[int] = ..., checksum: _Optional[str] = ..., os_type: _Optional[_Union[OsType, str]] = ..., os_version: _Optional[str] = ..., architecture: _Optional[_Union[Architecture, str]] = ..., min_disk_gib: _Optional[int] = ..., min_memory_mib: _Optional[int] = ..., status: _Optional[_Union[ImageStatus, str]] = ..., created_at: _Optional[int] = ..., updated_at: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateImageRequest(_message.Message):
    __slots__ = ("name", "org_id", "visibility", "shared_orgs", "source", "format", "checksum", "os_type", "os_version", "architecture", "min_disk_gib", "min_memory_mib", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SHARED_ORGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    OS_TYPE_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    MIN_DISK_GIB_FIELD_NUMBER: _ClassVar[int]
    MIN_MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    org_id: str
    visibility: Visibility
    shared_orgs: _containers.RepeatedScalarFieldContainer[str]
    source: ImageSource
    format: ImageFormat
    checksum: str
    os_type: OsType
    os_version: str
    architecture: Architecture
    min_disk_gib: int
    min_memory_mib: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., org_id: _Optional[str] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., shared_orgs: _Optional[_Iterable[str]] = ..., source: _Optional[_Union[ImageSource, _Mapping]] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., checksum: _Optional[str] = ..., os_type: _Optional[_Union[OsType, str]] = ..., os_version: _Optional[str] = ..., architecture: _Optional[_Union[Architecture, str]] = ..., min_disk_gib: _Optional[int] = ..., min_memory_mib: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetImageRequest(_message.Message):
    __slots__ = ("org_id", "image_id")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    image_id: str
    def __init__(self, org_id: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ("org_id", "page_size", "page_token")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    page_size: int
    page_token: str
    def __init__(self, org_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images", "next_page_token")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    next_page_token: str
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateImageRequest(_message.Message):
    __slots__ = ("org_id", "image_id", "name", "visibility", "shared_orgs", "metadata", "update_metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SHARED_ORGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    UPDATE_METADATA_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    image_id: str
    name: str
    visibility: Visibility
    shared_orgs: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    update_metadata: bool
    def __init__(self, org_id: _Optional[str] = ..., image_id: _Optional[str] = ..., name: _Optional[str] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., shared_orgs: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., update_metadata: _Optional[bool] = ...) -> None: ...

class DeleteImageRequest(_message.Message):
    __slots__ = ("org_id", "image_id")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    image_id: str
    def __init__(self, org_id: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class UploadImageRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: CreateImageRequest
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[CreateImageRequest, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class DownloadImageRequest(_message.Message):
    __slots__ = ("org_id", "image_id", "offset")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    image_id: str
    offset: int
    def __init__(self, org_id: _Optional[str] = ..., image_id: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class DownloadImageResponse(_message.Message):
    __slots__ = ("chunk", "offset", "total_size")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    offset: int
    total_size: int
    def __init__(self, chunk: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ...) -> None: ...

class ConvertImageRequest(_message.Message):
    __slots__ = ("org_id", "image_id", "target_format", "name")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FORMAT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    image_id: str
    target_format: ImageFormat
    name: str
    def __init__(self, org_id: _Optional[str] = ..., image_id: _Optional[str] = ..., target_format: _Optional[_Union[ImageFormat, str]] = ..., name: _Optional[str] = ...) -> None: ...
