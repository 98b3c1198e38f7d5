"""Registers built guest images (`plasmavmc-build-guest` output) as public system images at start-up.

A guest directory becomes three images, the way OpenStack pairs an AMI with its AKI/ARI: the root disk
(`<name>`) whose metadata names its `kernel_id`, `ramdisk_id` and `kernel_cmdline`, the kernel
(`<name>-kernel`) and the initramfs (`<name>-initrd`). Files are checked against the manifest's
sha256, then copied into the image store (any backend) before a record is written; re-running is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from plasmavmc.errors import ImageNotFound, InvalidArgument
from plasmavmc.images.catalog import ImageCatalog
from plasmavmc.images.guest.build import GuestManifest, load_manifest
from plasmavmc.images.store_base import BlobRef, ImageStore, sha256_file
from plasmavmc.types.image import (
    Image,
    ImageFormat,
    ImageSource,
    ImageStatus,
    OsType,
    UploadSource,
    Visibility,
)

log = logging.getLogger(__name__)
SYSTEM_ORG = "system"


async def _register(catalog: ImageCatalog, files: ImageStore, src: Path, image: Image) -> Image:
    try:
        existing = await catalog.get(SYSTEM_ORG, image.id)
    except ImageNotFound:
        existing = None
    if existing is not None and existing.checksum == image.checksum:
        return existing
    if await asyncio.to_thread(sha256_file, src) != image.checksum:
        raise InvalidArgument("image_store.seed_dirs", f"{src}: sha256 does not match its manifest")
    ref = BlobRef.of(image)
    if await files.size(ref) != image.size_bytes:
        await files.put_file(ref, src)
    stored = Image(**{**image.__dict__, "source": ImageSource(upload=UploadSource(storage_path=ref.key))})
    return (await catalog.put_if_changed(stored)).value


def _image(manifest: GuestManifest, image_id: str, file_name: str, **extra: object) -> Image:
    entry = manifest.file(file_name)
    now = int(time.time())
    base = Image(
        id=image_id,
        name=image_id,
        org_id=SYSTEM_ORG,
        visibility=Visibility.PUBLIC,
        format=ImageFormat.RAW,
        size_bytes=entry.size,
        checksum=entry.sha256,
        os_type=OsType.LINUX,
        os_version=f"debian-{manifest.kernel_version}",
        status=ImageStatus.AVAILABLE,
        created_at=now,
        updated_at=now,
    )
    return Image(**{**base.__dict__, **extra})


async def seed_guest_dir(catalog: ImageCatalog, files: ImageStore, guest_dir: Path) -> Image:
    """Register the guest image in `guest_dir`; returns the root-disk image."""
    manifest = load_manifest(guest_dir)
    name = manifest.name
    kernel = _image(manifest, f"{name}-kernel", manifest.kernel, os_type=OsType.OTHER, metadata={"type": "kernel"})
    initrd = _image(manifest, f"{name}-initrd", manifest.initrd, os_type=OsType.OTHER, metadata={"type": "ramdisk"})
    disk = _image(
        manifest,
        name,
        manifest.root_disk,
        format=ImageFormat(manifest.root_disk_format),  # raw (tiny guest) or qcow2 (debian-12)
        min_disk_gib=1,
        min_memory_mib=64,
        metadata={"kernel_id": kernel.id, "ramdisk_id": initrd.id, "kernel_cmdline": manifest.cmdline},
    )
    for image, file_name in ((kernel, manifest.kernel), (initrd, manifest.initrd)):
        await _register(catalog, files, guest_dir / file_name, image)
    registered = await _register(catalog, files, guest_dir / manifest.root_disk, disk)
    log.info("registered guest image %s (%s)", name, registered.checksum[:12])
    return registered
