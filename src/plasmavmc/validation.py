"""Validation of everything a user sends, at the API edge, before anything is read or written.

Every check raises `InvalidArgument` naming the request field, so a bad request changes nothing and
says what to fix. Names and ids are restricted to a charset that is safe in a store key, a file path, a
kernel command line and a QEMU option string; nothing user-supplied reaches any of those unchecked.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import uuid
from collections.abc import Iterable

from plasmavmc.errors import InvalidArgument, Unimplemented
from plasmavmc.limits import (
    KERNEL_ARGS_MAX,
    LABEL_VALUE_MAX,
    MAX_DISK_GIB,
    MAX_DISKS_PER_VM,
    MAX_LABELS,
    MAX_MEMORY_MIB,
    MAX_NICS_PER_VM,
    MAX_SSH_KEYS,
    MAX_TOLERATIONS,
    MAX_VCPUS,
    MIN_MEMORY_MIB,
    NAME_MAX,
    SSH_KEY_MAX,
    USER_DATA_MAX,
)
from plasmavmc.types.vm import CloudInitSpec, DiskBus, DiskSpec, NetworkSpec, VmResize, VmSpec

__all__ = ["MAX_DISK_GIB", "MAX_MEMORY_MIB", "NAME_MAX"]
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LABEL_KEY_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?")
_KERNEL_ARGS_RE = re.compile(r"[A-Za-z0-9._=,:/+ -]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# an OVSDB endpoint (OVN northbound, a node's Open_vSwitch DB): tcp:HOST:PORT, ssl:HOST:PORT, unix:/PATH
OVSDB_ENDPOINT_RE = re.compile(r"(tcp|ssl):[A-Za-z0-9.:\[\]-]+:\d{1,5}|unix:/[^\s,]+")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SSH_KEY_RE = re.compile(
    r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( [^\x00-\x1f\x7f]*)?")
USER_DATA_KINDS = ("#cloud-config\n", "#!")
_CANONICAL_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_GOOD_NAMES: set[str] = set()  # names that passed `name` (every read checks the same few scope ids)
_GOOD_NAMES_MAX = 10_000


def name(value: str, field: str) -> str:
    """A resource name or scope id: 1-63 chars of [A-Za-z0-9._-], starting alphanumeric, no '..'."""
    if value in _GOOD_NAMES:
        return value
    if not value:
        raise InvalidArgument(field, "must not be empty")
    if len(value) > NAME_MAX:
        raise InvalidArgument(field, f"must be at most {NAME_MAX} characters, got {len(value)}")
    if not _NAME_RE.fullmatch(value) or ".." in value:
        raise InvalidArgument(
            field,
            f"{value[:80]!r} may contain only letters, digits, '.', '_' and '-', start with a "
            "letter or digit, and not contain '..'",
        )
    if len(_GOOD_NAMES) >= _GOOD_NAMES_MAX:
        _GOOD_NAMES.clear()
    _GOOD_NAMES.add(value)
    return value


def vm_id(value: str, field: str = "vm_id") -> str:
    if _CANONICAL_UUID_RE.fullmatch(value):  # the form ids are made in: already canonical
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(field, f"{value[:80]!r} is not a VM id (UUID)") from None


def is_canonical_uuid(value: str) -> bool:
    """A UUID in the form ids are made in (lower-case hex, hyphens where `str(uuid.UUID(...))` puts them)."""
    return _CANONICAL_UUID_RE.fullmatch(value) is not None


def is_uuid(value: str) -> bool:
    if is_canonical_uuid(value):  # the form ids are made in: no need to parse
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def vm_ref(value: str, field: str = "vm.vm_id") -> str:
    """A VM id (UUID) or a VM name in the project."""
    return value if is_uuid(value) else name(value, field)


def labels(values: dict[str, str], field: str) -> dict[str, str]:
    if len(values) > MAX_LABELS:
        raise InvalidArgument(field, f"at most {MAX_LABELS} entries")
    for key, val in values.items():
        if len(key) > NAME_MAX or not _LABEL_KEY_RE.fullmatch(key):
            raise InvalidArgument(f"{field}[{key[:40]}]", "invalid key")
        text(val, f"{field}[{key}]", LABEL_VALUE_MAX)
    return values


def text(value: str, field: str, max_len: int) -> str:
    """Free text: at most `max_len` characters, no control characters (newlines, NUL, ANSI escapes)."""
    if len(value) > max_len:
        raise InvalidArgument(field, f"at most {max_len} characters, got {len(value)}")
    if _CONTROL_RE.search(value):
        raise InvalidArgument(field, "must not contain control characters (newline, NUL, escape sequences)")
    return value


def kernel_args(value: str, field: str) -> str:
    """Kernel command-line words: `spec.boot.kernel_args` and an image's `kernel_cmdline` metadata alike."""
    if len(value) > KERNEL_ARGS_MAX or not _KERNEL_ARGS_RE.fullmatch(value):
        raise InvalidArgument(field, f"at most {KERNEL_ARGS_MAX} characters of [A-Za-z0-9._=,:/+ -]")
    return value


def image_metadata(values: dict[str, str], field: str = "metadata") -> dict[str, str]:
    """Image metadata: label rules, and the boot keys by the rules of the VM fields they stand for
    (`kernel_cmdline` is kernel arguments like `spec.boot.kernel_args`; the ids are image names)."""
    labels(values, field)
    if "kernel_cmdline" in values:
        kernel_args(values["kernel_cmdline"], f"{field}[kernel_cmdline]")
    for key in ("kernel_id", "ramdisk_id"):
        if values.get(key):
            name(values[key], f"{field}[{key}]")
    return values


def _cpu(spec: VmSpec) -> None:
    cpu = spec.cpu
    if not 1 <= cpu.vcpus <= MAX_VCPUS:
        raise InvalidArgument("spec.cpu.vcpus", f"must be between 1 and {MAX_VCPUS}, got {cpu.vcpus}")
    if cpu.sockets < 0 or cpu.cores_per_socket < 0:
        raise InvalidArgument("spec.cpu", "sockets and cores_per_socket must not be negative")
    sockets = cpu.sockets or 1
    if cpu.cores_per_socket and sockets * cpu.cores_per_socket != cpu.vcpus:
        raise InvalidArgument("spec.cpu.cores_per_socket", "sockets * cores_per_socket must equal vcpus")
    if cpu.vcpus % sockets:
        raise InvalidArgument("spec.cpu.sockets", "vcpus must be a multiple of sockets")
    if cpu.cpu_model is not None:
        name(cpu.cpu_model, "spec.cpu.cpu_model")


def _memory(spec: VmSpec) -> None:
    size = spec.memory.size_mib
    if not MIN_MEMORY_MIB <= size <= MAX_MEMORY_MIB:
        raise InvalidArgument(
            "spec.memory.size_mib", f"must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, got {size}"
        )


def _disks(spec: VmSpec) -> None:
    if not spec.disks:
        raise InvalidArgument("spec.disks", "at least one disk (with an image source) is required")
    if len(spec.disks) > MAX_DISKS_PER_VM:
        raise InvalidArgument("spec.disks", f"at most {MAX_DISKS_PER_VM} disks per VM, got {len(spec.disks)}")
    seen: set[str] = set()
    for i, disk in enumerate(spec.disks):
        where = f"spec.disks[{i}]"
        name(disk.id, f"{where}.id")
        if disk.id in seen:
            raise InvalidArgument(f"{where}.id", f"duplicate disk id {disk.id!r}")
        seen.add(disk.id)
        if not 1 <= disk.size_gib <= MAX_DISK_GIB:
            raise InvalidArgument(f"{where}.size_gib", f"must be between 1 and {MAX_DISK_GIB}")
        if disk.source.volume_id is not None:
            raise Unimplemented(f"{where}.source.volume_id: persistent volumes (LightningSTOR) are not available")
        if disk.source.image_id is None:
            raise InvalidArgument(f"{where}.source", "an image_id is required")
        name(disk.source.image_id, f"{where}.source.image_id")
        if disk.bus not in DiskBus:
            raise InvalidArgument(f"{where}.bus", "unknown bus")


_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_DEVICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def device_id(value: str, field: str) -> str:
    """A disk, NIC or snapshot id: it becomes part of hypervisor option strings and file names."""
    if not _DEVICE_ID_RE.fullmatch(value) or ".." in value:
        raise InvalidArgument(field, f"{value[:80]!r} must match [a-z0-9][a-z0-9._-]* (at most 63 characters)")
    return value


def nic(spec: NetworkSpec, where: str) -> NetworkSpec:
    """A NIC on a tenant network; `ip_address` (IPv4) asks IPAM for that address; `security_groups`
    names groups of the VM's project (none: the network's built-in `default` group)."""
    device_id(spec.id, f"{where}.id")
    name(spec.network_id, f"{where}.network_id")
    if spec.mac_address is not None and not _MAC_RE.fullmatch(spec.mac_address):
        raise InvalidArgument(f"{where}.mac_address", f"{spec.mac_address[:40]!r} is not a MAC address")
    if spec.ip_address is not None:
        try:
            ipaddress.IPv4Address(spec.ip_address)
        except ValueError as exc:
            raise InvalidArgument(f"{where}.ip_address", f"{spec.ip_address[:60]!r} is not an IPv4 address") from exc
    for i, group in enumerate(spec.security_groups):
        name(group, f"{where}.security_groups[{i}]")
    return spec


def attached_disk(disk: DiskSpec, where: str = "disk") -> DiskSpec:
    """A disk attached to an existing VM: from an image, or blank when it has no source."""
    device_id(disk.id, f"{where}.id")
    if not 1 <= disk.size_gib <= MAX_DISK_GIB:
        raise InvalidArgument(f"{where}.size_gib", f"must be between 1 and {MAX_DISK_GIB}")
    if disk.source.volume_id is not None:
        raise Unimplemented(f"{where}.source.volume_id: persistent volumes (LightningSTOR) are not available")
    if disk.source.image_id is not None:
        name(disk.source.image_id, f"{where}.source.image_id")
    return disk


def _networks(nics: tuple[NetworkSpec, ...]) -> None:
    if len(nics) > MAX_NICS_PER_VM:
        raise InvalidArgument("spec.network", f"at most {MAX_NICS_PER_VM} NICs per VM, got {len(nics)}")
    seen: set[str] = set()
    for i, spec in enumerate(nics):
        nic(spec, f"spec.network[{i}]")
        if spec.id in seen:
            raise InvalidArgument(f"spec.network[{i}].id", f"duplicate NIC id {spec.id!r}")
        seen.add(spec.id)


TAINT_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


def _placement(spec: VmSpec) -> None:
    """`spec.placement`: scheduling constraints (see scheduler/filters and scorers)."""
    p = spec.placement
    labels(p.node_selector, "spec.placement.node_selector")
    if len(p.tolerations) > MAX_TOLERATIONS:
        raise InvalidArgument("spec.placement.tolerations", f"at most {MAX_TOLERATIONS}")
    for i, t in enumerate(p.tolerations):
        labels({t.key: t.value}, f"spec.placement.tolerations[{i}]")
        if t.effect not in TAINT_EFFECTS:
            raise InvalidArgument(f"spec.placement.tolerations[{i}].effect", f"one of {TAINT_EFFECTS[1:]} or empty")
    for field in ("anti_affinity_group", "zone", "rack"):
        if value := getattr(p, field):
            name(value, f"spec.placement.{field}")


def cloud_init(spec: CloudInitSpec, where: str = "spec.cloud_init") -> CloudInitSpec:
    """The cloud-init seed's fields: user-data size and kind, OpenSSH public keys, an RFC 1123 hostname."""
    size = len(spec.user_data.encode())
    if size > USER_DATA_MAX:
        raise InvalidArgument(f"{where}.user_data", f"at most {USER_DATA_MAX} bytes, got {size}")
    if spec.user_data and (not spec.user_data.startswith(USER_DATA_KINDS) or "\x00" in spec.user_data):
        raise InvalidArgument(f"{where}.user_data", "must start with '#cloud-config' (a line of its own) or "
                              "'#!' (a script), and hold no NUL")
    if len(spec.ssh_authorized_keys) > MAX_SSH_KEYS:
        raise InvalidArgument(f"{where}.ssh_authorized_keys", f"at most {MAX_SSH_KEYS} keys")
    for i, key in enumerate(spec.ssh_authorized_keys):
        if len(key) > SSH_KEY_MAX or not _SSH_KEY_RE.fullmatch(key):
            raise InvalidArgument(f"{where}.ssh_authorized_keys[{i}]", "not one OpenSSH public key line "
                                  f"('TYPE BASE64 [COMMENT]', at most {SSH_KEY_MAX} characters)")
    if spec.hostname and not _HOSTNAME_RE.fullmatch(spec.hostname):
        raise InvalidArgument(f"{where}.hostname", "1-63 of [A-Za-z0-9-], not starting or ending with '-'")
    return spec


def vm_spec(spec: VmSpec) -> VmSpec:
    """Check a whole VmSpec; returns it unchanged."""
    _cpu(spec)
    _placement(spec)
    _memory(spec)
    _disks(spec)
    _networks(spec.network)
    kernel_args(spec.boot.kernel_args, "spec.boot.kernel_args")
    if spec.boot.machine_type:
        name(spec.boot.machine_type, "spec.boot.machine_type")
    if spec.cloud_init is not None:
        cloud_init(spec.cloud_init)
    return spec


def vm_resize(change: VmResize) -> VmResize:
    """The fields of a resize (UpdateVm and the agent's ResizeVm), each error naming its field."""
    if change.vcpus and not 1 <= change.vcpus <= MAX_VCPUS:
        raise InvalidArgument("vcpus", f"must be between 1 and {MAX_VCPUS}, got {change.vcpus}")
    if change.memory_mib and not MIN_MEMORY_MIB <= change.memory_mib <= MAX_MEMORY_MIB:
        raise InvalidArgument("memory_mib", f"must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, "
                              f"got {change.memory_mib}")
    for disk_id, size in change.disk_sizes.items():
        device_id(disk_id, "disk_sizes.disk_id")
        if not 1 <= size <= MAX_DISK_GIB:
            raise InvalidArgument(f"disk_sizes[{disk_id}].size_gib", f"must be between 1 and {MAX_DISK_GIB}")
    return change


def vm_resize_of(vcpus: int, memory_mib: int, disk_sizes: Iterable[tuple[str, int]]) -> VmResize:
    """A validated resize from the wire's fields (a disk named twice is refused)."""
    sizes: dict[str, int] = {}
    for disk_id, size in disk_sizes:
        if disk_id in sizes:
            raise InvalidArgument("disk_sizes.disk_id", f"disk {disk_id[:64]!r} is named twice")
        sizes[disk_id] = size
    return vm_resize(VmResize(vcpus=vcpus, memory_mib=memory_mib, disk_sizes=sizes))


def resized_spec(spec: VmSpec, change: VmResize) -> VmSpec:
    """`spec` with `change` applied; INVALID_ARGUMENT naming the field for an unknown disk or a shrink."""
    known = {d.id: d for d in spec.disks}
    for disk_id, size in change.disk_sizes.items():
        disk = known.get(disk_id)
        if disk is None:
            raise InvalidArgument(f"disk_sizes[{disk_id}].disk_id", f"the VM has no disk {disk_id!r} "
                                  f"(its disks: {', '.join(known) or 'none'})")
        if size < disk.size_gib:
            raise InvalidArgument(f"disk_sizes[{disk_id}].size_gib",
                                  f"{size} GiB is smaller than the disk's {disk.size_gib} GiB: disks only grow")
    cpu = spec.cpu if not change.vcpus else dataclasses.replace(spec.cpu, vcpus=change.vcpus)
    if change.vcpus and spec.cpu.cores_per_socket and spec.cpu.sockets * spec.cpu.cores_per_socket != change.vcpus:
        raise InvalidArgument("vcpus", f"{change.vcpus} does not match the VM's topology "
                              f"({spec.cpu.sockets} sockets x {spec.cpu.cores_per_socket} cores)")
    if change.vcpus and change.vcpus % max(spec.cpu.sockets, 1):
        raise InvalidArgument("vcpus", f"must be a multiple of the VM's {spec.cpu.sockets} sockets")
    memory = spec.memory if not change.memory_mib else dataclasses.replace(spec.memory, size_mib=change.memory_mib)
    disks = tuple(dataclasses.replace(d, size_gib=change.disk_sizes.get(d.id, d.size_gib)) for d in spec.disks)
    return dataclasses.replace(spec, cpu=cpu, memory=memory, disks=disks)
