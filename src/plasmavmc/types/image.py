"""The Image resource (spec §3.4). Field names match the protobuf messages one to one."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    SHARED = "shared"  # with the orgs in Image.shared_orgs


class ImageFormat(StrEnum):
    RAW = "raw"
    QCOW2 = "qcow2"
    VMDK = "vmdk"
    VHD = "vhd"


class ImageStatus(StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    CONVERTING = "converting"
    AVAILABLE = "available"
    ERROR = "error"
    DELETED = "deleted"


class OsType(StrEnum):
    LINUX = "linux"
    WINDOWS = "windows"
    OTHER = "other"


class Architecture(StrEnum):
    X86_64 = "x86_64"
    AARCH64 = "aarch64"


@dataclass(frozen=True)
class UrlSource:
    url: str = ""


@dataclass(frozen=True)
class UploadSource:
    storage_path: str = ""


@dataclass(frozen=True)
class SnapshotSource:
    vm_id: str = ""
    disk_id: str = ""


@dataclass(frozen=True)
class ImageSource:
    """Exactly one of the three is set (a protobuf oneof)."""

    url: UrlSource | None = None
    upload: UploadSource | None = None
    snapshot: SnapshotSource | None = None


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    org_id: str = "system"
    visibility: Visibility = Visibility.PRIVATE
    shared_orgs: tuple[str, ...] = ()
    source: ImageSource = field(default_factory=ImageSource)
    format: ImageFormat = ImageFormat.RAW
    size_bytes: int = 0
    checksum: str = ""  # sha256, hex
    os_type: OsType = OsType.LINUX
    os_version: str = ""
    architecture: Architecture = Architecture.X86_64
    min_disk_gib: int = 0
    min_memory_mib: int = 0
    status: ImageStatus = ImageStatus.PENDING
    created_at: int = 0
    updated_at: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
