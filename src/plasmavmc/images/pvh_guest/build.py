"""Builder of the PVH test guest (`guest.S` + `guest.ld`, assembled with binutils) and its seed dir.

Owns two artefacts:

- the kernel: an ELF64 `vmlinux` with a Xen PVH note, loaded at 1 MiB (see `guest.S` for what it
  does on the serial port); built with `as --64` and `ld -T guest.ld`, argv lists only;
- a *seed directory* in the manifest format of `images/guest/build.py` (`load_manifest`), so that the
  server's `image_store.seed_dirs` registers it like the default guest: the disk image
  `plasmavmc-pvh` (a tiny raw disk; the guest never reads it) whose `kernel_id` is `plasmavmc-pvh-kernel`
  and `ramdisk_id` `plasmavmc-pvh-initrd` (a placeholder the guest ignores: seed images come in threes).

Both are idempotent (a seed dir of the same recipe is reused) and atomic (temp names + rename; the
manifest is written last). Run as `python -m plasmavmc.images.pvh_guest.build --out DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

from plasmavmc.images.guest.build import (
    MANIFEST_NAME,
    GuestBuildError,
    GuestFile,
    GuestManifest,
    load_manifest,
    sha256_file,
)
from plasmavmc.images.guest.tools import run

IMAGE_NAME = "plasmavmc-pvh"
READY_LINE = "PLASMAVMC-PVH-GUEST READY"
KERNEL = "vmlinux"
INITRD = "initrd.img"
ROOT_DISK = "disk.raw"
ROOT_DISK_BYTES = 1024 * 1024
SOURCES = ("guest.S", "guest.ld")
_INITRD_TEXT = b"plasmavmc pvh guest: no initrd is used\n"


def recipe() -> str:
    """sha256 over the guest's sources and this builder: a changed recipe means rebuild."""
    digest = hashlib.sha256()
    package = resources.files(__package__ or "plasmavmc.images.pvh_guest")
    for name in (*SOURCES, "build.py"):
        digest.update(name.encode() + b"\0" + package.joinpath(name).read_bytes() + b"\0")
    return digest.hexdigest()


async def build_kernel(out: Path) -> Path:
    """Assemble and link the guest into `out` (atomically); returns `out`."""
    package = resources.files(__package__ or "plasmavmc.images.pvh_guest")
    with tempfile.TemporaryDirectory(prefix=".pvh-build-", dir=out.parent) as tmp:
        work = Path(tmp)
        for name in SOURCES:
            (work / name).write_bytes(package.joinpath(name).read_bytes())
        await run(["as", "--64", "-o", "guest.o", "guest.S"], cwd=work)
        await run(["ld", "-m", "elf_x86_64", "-nostdlib", "--no-warn-rwx-segments", "-T", "guest.ld",
                   "-o", "guest.elf", "guest.o"], cwd=work)
        os.replace(work / "guest.elf", out)
    return out


def _write(path: Path, data: bytes, *, size: int | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if size is not None:
            f.truncate(size)
    os.replace(tmp, path)


def _current(out_dir: Path, want: str) -> GuestManifest | None:
    try:
        manifest = load_manifest(out_dir)
    except GuestBuildError:
        return None
    if manifest.name != IMAGE_NAME or manifest.recipe != want:
        return None
    for entry in manifest.files:
        path = out_dir / entry.name
        if not path.is_file() or path.stat().st_size != entry.size:
            return None
    return manifest


async def build_seed(out_dir: Path) -> GuestManifest:
    """Make (or reuse) the seed directory `out_dir`; returns its manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    want = recipe()
    existing = _current(out_dir, want)
    if existing is not None:
        return existing
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    await build_kernel(out_dir / KERNEL)
    _write(out_dir / INITRD, _INITRD_TEXT)
    _write(out_dir / ROOT_DISK, b"", size=ROOT_DISK_BYTES)
    files = tuple(GuestFile(n, (out_dir / n).stat().st_size, sha256_file(out_dir / n))
                  for n in (KERNEL, INITRD, ROOT_DISK))
    manifest = GuestManifest(
        name=IMAGE_NAME, kernel_version="pvh-test-guest", kernel_package="plasmavmc-pvh-guest",
        kernel_package_version=want[:12], busybox_version="none", recipe=want, modules=(), files=files,
        kernel=KERNEL, kernel_bzimage=KERNEL, initrd=INITRD, root_disk=ROOT_DISK, root_disk_format="raw",
        cmdline="console=ttyS0",
    )
    _write(out_dir / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=2).encode())
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plasmavmc-build-pvh-guest",
                                     description="Build the PVH test guest and its seed directory.")
    parser.add_argument("--out", required=True, type=Path, help="seed directory to write")
    args = parser.parse_args(argv)
    try:
        manifest = asyncio.run(build_seed(args.out.absolute()))
    except GuestBuildError as exc:
        print(f"plasmavmc-build-pvh-guest: {exc}", file=sys.stderr)
        return 1
    print(f"{manifest.name}: {args.out / KERNEL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
