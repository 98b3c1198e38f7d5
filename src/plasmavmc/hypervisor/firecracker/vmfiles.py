"""The files a create puts in a Firecracker VM's guest dir from its images, and which of its files must
survive a host crash.

The kernel and initrd are hard links of the cached images when the jail's uid can read them as they are
(world-readable, or a root jail): a link shares the cached file's inode, so it is never chowned or
written (`launcher.jail_files` leaves them out). Each disk is the VM's own raw file (`disks.make_disk`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from plasmavmc.hypervisor.base import LocalImage
from plasmavmc.hypervisor.firecracker import jail
from plasmavmc.hypervisor.firecracker.disks import make_disk
from plasmavmc.hypervisor.firecracker.jail import JailerOptions
from plasmavmc.hypervisor.firecracker.layout import INITRD, KERNEL, FcPaths
from plasmavmc.hypervisor.vmdir import HANDLE, IMAGES, VM
from plasmavmc.types.vm import VirtualMachine


async def place_boot_files(vm: VirtualMachine, boot: LocalImage, used: Mapping[str, LocalImage], paths: FcPaths,
                           *, jailer: JailerOptions, qemu_img: str, durable: bool = True) -> None:
    """Kernel, initrd and every disk of `vm` in its guest dir (`durable` as `disks.sparse_copy`)."""
    assert boot.kernel_path is not None
    jail.link_or_copy(boot.kernel_path, paths.guest / KERNEL, allow_link=_linkable(paths, jailer, boot.kernel_path))
    if boot.initrd_path is not None:
        jail.link_or_copy(boot.initrd_path, paths.guest / INITRD,
                          allow_link=_linkable(paths, jailer, boot.initrd_path))
    for disk in vm.spec.disks:
        image = used[disk.source.image_id or ""]
        await make_disk(qemu_img, image.disk_path, image.disk_format, paths.disk(disk.id), disk.size_gib,
                        durable=durable)


def _linkable(paths: FcPaths, jailer: JailerOptions, image_file: Path) -> bool:
    return not paths.jailed or jailer.uid == 0 or image_file.stat().st_mode & 0o004 != 0


def durable_files(paths: FcPaths, vm: VirtualMachine) -> list[Path]:
    """What a create writes that must survive a host crash: its records, its disks, their directories."""
    return [paths.root / HANDLE, paths.root / VM, paths.root / IMAGES,
            *(paths.disk(d.id) for d in vm.spec.disks), paths.guest, paths.root, paths.root.parent]
