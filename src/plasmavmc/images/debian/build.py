"""Builder of the Debian 12 cloud image, ``debian-12``, from Debian packages only
(``plasmavmc-build-debian --out DIR [--force]``, run by ``scripts/setup``; needs root).

Owns the build's order and its output directory, in the manifest format of the tiny guest
(``images/guest/build.py``) so that ``image_store.seed_dirs`` registers it the same way:

- ``disk.qcow2``  the root disk: MBR + GRUB (BIOS boot on q35) + one ext4 partition with systemd,
                  cloud-init (NoCloud only), openssh-server and Debian's kernel and initramfs
- ``vmlinux``     the same kernel uncompressed (PVH direct boot on microvm), ``vmlinuz`` as shipped
- ``initrd.img``  Debian's initramfs (mounts the root by filesystem UUID)

Idempotent (a complete image of the same recipe is kept: the manifest is the stamp), serialised by a
lock file and atomic (temp names in ``out_dir``, renamed; the manifest written last).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from plasmavmc.images.debian import disk, rootfs
from plasmavmc.images.guest.build import (
    GuestManifest,
    Staging,
    build_or_reuse,
    builder_main,
    builder_recipe,
    verify_image,
)
from plasmavmc.images.guest.kernel import extract_vmlinux
from plasmavmc.images.guest.tools import run

log = logging.getLogger(__name__)

IMAGE_NAME = "debian-12"
DISK = "disk.qcow2"
VMLINUX = "vmlinux"
VMLINUZ = "vmlinuz"
INITRD = "initrd.img"
ARTEFACTS = (DISK, VMLINUX, VMLINUZ, INITRD)
DISK_BYTES = 2 << 30  # virtual size; cloud-init grows the filesystem to a bigger VM disk
ROOT_LABEL = "debian-root"
MIN_MEMORY_MIB = 256


def recipe() -> str:
    return builder_recipe("plasmavmc.images.debian")


async def build_debian(out_dir: Path, *, force: bool = False) -> GuestManifest:
    """Build (or reuse, unless ``force``) the Debian image in ``out_dir``; return its manifest."""
    def verify(d: Path) -> GuestManifest | None:
        return verify_image(d, name=IMAGE_NAME, recipe=recipe(), artefacts=ARTEFACTS)

    return await build_or_reuse(out_dir, force, verify, _build)


async def _build(out_dir: Path) -> GuestManifest:
    staging = Staging(out_dir)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir))
    try:
        fs_uuid = str(uuid.uuid4())
        root = work / "root"
        version = await rootfs.bootstrap(root, fs_uuid)
        package_version = await _package_version(root, f"linux-image-{version}")
        await _write_boot_files(staging, root)
        await _write_disk(staging, root, work, fs_uuid)
        manifest = GuestManifest(
            name=IMAGE_NAME, kernel_version=version, kernel_package=f"linux-image-{version}",
            kernel_package_version=package_version,
            busybox_version="", recipe=recipe(), modules=(),
            files=await asyncio.to_thread(staging.describe, ARTEFACTS),
            kernel=VMLINUX, kernel_bzimage=VMLINUZ, initrd=INITRD, root_disk=DISK, root_disk_format="qcow2",
            cmdline=rootfs.boot_cmdline(fs_uuid),
        )
        await asyncio.to_thread(staging.commit, manifest)
        return manifest
    finally:
        staging.discard()
        await asyncio.to_thread(_remove_work, work)


def _remove_work(work: Path) -> None:
    """Remove the build's scratch directory — unless something is still mounted inside it (an interrupted
    mmdebstrap's /proc, /sys, /dev): deleting through those would reach the host's."""
    with open("/proc/mounts", encoding="utf-8") as mounts:
        inside = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{work}/")]
    if inside:
        log.error("not removing %s: still mounted inside it: %s", work, ", ".join(inside))
        return
    shutil.rmtree(work, ignore_errors=True)


async def _write_boot_files(staging: Staging, root: Path) -> None:
    vmlinuz, initrd, _ = rootfs.kernel_files(root)
    bzimage = await asyncio.to_thread(vmlinuz.read_bytes)
    await asyncio.to_thread(staging.write, VMLINUZ, bzimage)
    await asyncio.to_thread(lambda: staging.write(VMLINUX, extract_vmlinux(bzimage)))
    await asyncio.to_thread(lambda: staging.write(INITRD, initrd.read_bytes()))


async def _write_disk(staging: Staging, root: Path, work: Path, fs_uuid: str) -> None:
    part, raw = work / "root.ext4", work / "disk.raw"
    await disk.make_ext4(root, part, DISK_BYTES - disk.PART_START * disk.SECTOR, fs_uuid, ROOT_LABEL)
    await asyncio.to_thread(shutil.rmtree, root)  # room: the tree is in the filesystem now
    await disk.make_disk(part, raw, work)
    part.unlink()
    await run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(staging.temp_path(DISK))])


async def _package_version(root: Path, package: str) -> str:
    out = await run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Version}", package])
    return out.decode().strip()


def main(argv: Sequence[str] | None = None) -> int:
    """``plasmavmc-build-debian --out DIR [--force]``."""
    return builder_main("Build the debian-12 cloud image (needs root).",
                        lambda out, force: build_debian(out, force=force), argv)


if __name__ == "__main__":
    sys.exit(main())
