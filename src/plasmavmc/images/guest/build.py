"""Builder of PlasmaVMC's default guest image, ``plasmavmc-tiny``, from Debian packages only.

Owns: resolving the current Debian kernel (``linux-image-amd64`` -> ``linux-image-<abi>-amd64``),
downloading it and ``busybox-static`` with ``apt-get download`` into ``<out>/.cache``, and writing
into ``out_dir``:

- ``vmlinux``            uncompressed ELF kernel (the xz stream inside the bzImage; PVH boot,
                         for QEMU microvm and Firecracker)
- ``bzImage``            the same kernel as shipped (for pc/q35 boots through SeaBIOS)
- ``initramfs.cpio.gz``  busybox + the kernel modules the guest needs (virtio mmio/pci/blk/net,
                         ext4 and deps, ACPI button, evdev); its ``/init`` mounts ``/dev/vda``
                         and switch_roots into it
- ``rootfs.ext4``        raw ext4 root disk (busybox init, serial shell, readiness line
                         ``PLASMAVMC-READY name=.. id=..``, acpid power-button -> power-off)
- ``manifest.json``      name, kernel version, packages, modules and size + sha256 of each file

The build is idempotent (a valid existing image is returned as is unless ``force``), serialised by
a lock file, and atomic: every artefact is written to a temporary name in ``out_dir`` and renamed
into place; the manifest is removed first and written last, so a manifest never describes files
that are not there. Guest-side scripts are package data files next to this module.

Run as ``python -m plasmavmc.images.guest.build --out DIR [--force]`` (needs root for apt-get).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gzip
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from plasmavmc.images.guest.cpio import CpioEntry, tree_entries, write_newc
from plasmavmc.images.guest.kernel import (
    KernelTree,
    deb_version,
    extract_vmlinux,
    fetch_deb,
    load_module_index,
    read_module,
    resolve_kernel_package,
    resolve_load_order,
    unpack_kernel,
)
from plasmavmc.images.guest.tools import GuestBuildError, run

__all__ = ["GuestBuildError", "GuestFile", "GuestManifest", "build_guest", "load_manifest", "verify_image"]

log = logging.getLogger(__name__)

IMAGE_NAME = "plasmavmc-tiny"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
VMLINUX = "vmlinux"
BZIMAGE = "bzImage"
INITRAMFS = "initramfs.cpio.gz"
ROOTFS = "rootfs.ext4"
ARTEFACTS = (VMLINUX, BZIMAGE, INITRAMFS, ROOTFS)
ROOT_DISK_FORMAT = "raw"
ROOT_DISK_SIZE = "32M"
ROOT_DISK_LABEL = "plasmavmc-root"
DEFAULT_CMDLINE = "console=ttyS0 quiet"

KERNEL_METAPACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# Top-level modules; their dependencies (modules.dep) and soft pre-dependencies (modules.softdep,
# e.g. ext4 -> crypto-crc32c) are resolved from the kernel itself. Built-in ones are skipped.
GUEST_MODULES = (
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "crc32c_generic",
    "ext4",
    "button",
    "evdev",
)
APT_OPTIONS = ("-o", "APT::Sandbox::User=root")
XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"
_MODULE_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class GuestFile:
    """One artefact of the image: file name inside the image directory, size and sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class GuestManifest:
    """What ``manifest.json`` says about a built guest image."""

    name: str
    kernel_version: str
    kernel_package: str
    kernel_package_version: str
    busybox_version: str
    recipe: str
    modules: tuple[str, ...]
    files: tuple[GuestFile, ...]
    kernel: str = VMLINUX
    kernel_bzimage: str = BZIMAGE
    initrd: str = INITRAMFS
    root_disk: str = ROOTFS
    root_disk_format: str = ROOT_DISK_FORMAT
    cmdline: str = DEFAULT_CMDLINE
    format_version: int = MANIFEST_FORMAT

    def file(self, name: str) -> GuestFile:
        """The entry for artefact ``name``; KeyError if the manifest has none."""
        for entry in self.files:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The JSON document written as ``manifest.json``."""
        return {
            "format_version": self.format_version,
            "name": self.name,
            "kernel_version": self.kernel_version,
            "kernel_package": {"name": self.kernel_package, "version": self.kernel_package_version},
            "busybox_package": {"name": BUSYBOX_PACKAGE, "version": self.busybox_version},
            "recipe": self.recipe,
            "modules": list(self.modules),
            "boot": {
                "kernel": self.kernel,
                "kernel_bzimage": self.kernel_bzimage,
                "initrd": self.initrd,
                "cmdline": self.cmdline,
            },
            "root_disk": {"file": self.root_disk, "format": self.root_disk_format},
            "files": {f.name: {"size": f.size, "sha256": f.sha256} for f in self.files},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuestManifest:
        """Parse a ``manifest.json`` document; GuestBuildError if it is malformed."""
        try:
            boot, disk = data["boot"], data["root_disk"]
            files = tuple(
                GuestFile(name=str(n), size=int(v["size"]), sha256=str(v["sha256"])) for n, v in data["files"].items()
            )
            return cls(
                name=str(data["name"]),
                kernel_version=str(data["kernel_version"]),
                kernel_package=str(data["kernel_package"]["name"]),
                kernel_package_version=str(data["kernel_package"]["version"]),
                busybox_version=str(data["busybox_package"]["version"]),
                recipe=str(data.get("recipe", "")),
                modules=tuple(str(m) for m in data["modules"]),
                files=files,
                kernel=str(boot["kernel"]),
                kernel_bzimage=str(boot["kernel_bzimage"]),
                initrd=str(boot["initrd"]),
                root_disk=str(disk["file"]),
                root_disk_format=str(disk["format"]),
                cmdline=str(boot["cmdline"]),
                format_version=int(data["format_version"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GuestBuildError(f"malformed guest manifest: {exc!r}") from exc


def load_manifest(out_dir: Path) -> GuestManifest:
    """Read ``out_dir/manifest.json`` (no verification of the files; see ``verify_image``)."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GuestBuildError(f"cannot read guest manifest {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise GuestBuildError(f"malformed guest manifest {path}: not a JSON object")
    return GuestManifest.from_json(data)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def builder_recipe(package_name: str | None = None) -> str:
    """sha256 over a builder package's source and guest scripts (this one's by default): a changed
    recipe means rebuild."""
    digest = hashlib.sha256()
    package = resources.files(package_name or __package__ or "plasmavmc.images.guest")
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith((".py", ".sh")):
            digest.update(f"{entry.name}\0".encode() + entry.read_bytes() + b"\0")
    return digest.hexdigest()


def verify_image(
    out_dir: Path, *, name: str = IMAGE_NAME, recipe: str | None = None, artefacts: Sequence[str] = ARTEFACTS
) -> GuestManifest | None:
    """The manifest if ``out_dir`` holds a complete image ``name`` of ``recipe`` (this builder's by
    default) with exactly ``artefacts``, every file matching it; else None."""
    try:
        manifest = load_manifest(out_dir)
    except GuestBuildError:
        return None
    if manifest.name != name or manifest.format_version != MANIFEST_FORMAT:
        return None
    if manifest.recipe != (recipe or builder_recipe()):
        return None
    if {f.name for f in manifest.files} != set(artefacts):
        return None
    for entry in manifest.files:
        path = Path(out_dir) / entry.name
        try:
            if path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
                return None
        except OSError:
            return None
    return manifest


# --------------------------------------------------------------------------- guest trees


def _data_file(name: str) -> bytes:
    return resources.files(__package__ or "plasmavmc.images.guest").joinpath(name).read_bytes()


def _put(root: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def install_busybox(root: Path, busybox: Path, applets: Sequence[str]) -> None:
    """Copy busybox to root/bin/busybox and symlink every applet to it."""
    _put(root, "bin/busybox", busybox.read_bytes(), 0o755)
    for applet in applets:
        link = root / applet
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")


async def busybox_applets(busybox: Path) -> list[str]:
    """Install paths of every applet of this busybox (``busybox --list-full``)."""
    out = (await run([str(busybox), "--list-full"])).decode()
    applets = [ln.strip().lstrip("/") for ln in out.splitlines() if ln.strip()]
    if "sbin/init" not in applets or "bin/sh" not in applets:
        raise GuestBuildError(f"{busybox} lacks the init or sh applet")
    return [a for a in applets if a != "bin/busybox"]


async def stage_initramfs(root: Path, busybox: Path, applets: Sequence[str], kernel: KernelTree) -> list[str]:
    """Lay out the initramfs tree; returns the module load order it ships."""
    install_busybox(root, busybox, applets)
    for rel in ("dev", "proc", "sys", "newroot", "lib/modules"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    _put(root, "init", _data_file("initramfs-init.sh"), 0o755)
    index = load_module_index(kernel.moddir)
    order = resolve_load_order(index, GUEST_MODULES)
    for name in order:
        _put(root, f"lib/modules/{name}.ko", await read_module(index.paths[name]))
    _put(root, "lib/modules/load-order", "".join(f"{m}\n" for m in order).encode())
    return order


def build_initramfs(root: Path) -> bytes:
    """The gzip-compressed newc archive of the staged tree plus /dev/console."""
    entries = tree_entries(root)
    entries.append(CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    return gzip.compress(write_newc(entries), compresslevel=9, mtime=0)


_ROOTFS_ETC: dict[str, str] = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/shadow": "root::0:0:99999:7:::\n",
    "etc/group": "root:x:0:\ntty:x:5:\n",
    "etc/hostname": "plasmavmc\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
    "etc/shells": "/bin/sh\n/bin/ash\n",
    "etc/fstab": "# the initramfs mounts the root disk; pseudo filesystems come from rcS\n",
    "etc/profile": "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='\\h:\\w\\$ '\n",
    "etc/acpid.conf": "# busybox acpid: event -> action (relative to /etc/acpi)\nPWRF power-button.sh\n",
    "etc/inittab": "# busybox init\n"
    "::sysinit:/etc/init.d/rcS\n"
    "ttyS0::respawn:-/bin/sh\n"
    "::ctrlaltdel:/sbin/reboot\n"
    "::shutdown:/etc/init.d/rcK\n",
    "etc/os-release": f'NAME="{IMAGE_NAME}"\nID=plasmavmc\nPRETTY_NAME="PlasmaVMC tiny guest"\n',
}


def stage_rootfs(root: Path, busybox: Path, applets: Sequence[str]) -> None:
    """Lay out the root disk tree: busybox, /etc, busybox init with the package's scripts."""
    install_busybox(root, busybox, applets)
    for rel in ("dev", "proc", "sys", "run", "root", "mnt", "var/log", "etc/init.d"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "root").chmod(0o700)
    for rel, text in _ROOTFS_ETC.items():
        _put(root, rel, text.encode(), 0o600 if rel == "etc/shadow" else 0o644)
    _put(root, "etc/init.d/rcS", _data_file("rootfs-init.sh"), 0o755)
    _put(root, "etc/init.d/rcK", _data_file("rootfs-shutdown.sh"), 0o755)
    _put(root, "etc/acpi/power-button.sh", _data_file("rootfs-power-button.sh"), 0o755)
    if not (root / "sbin/init").is_symlink():
        raise GuestBuildError("busybox-static has no init applet")


# --------------------------------------------------------------------------- output staging


@dataclass
class Staging:
    """Artefacts written to temporary names in out_dir, renamed into place by ``commit``."""

    out_dir: Path
    pending: dict[str, Path] = field(default_factory=dict)

    def temp_path(self, name: str) -> Path:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.out_dir)
        os.close(fd)
        self.pending[name] = Path(tmp)
        return Path(tmp)

    def write(self, name: str, data: bytes) -> None:
        tmp = self.temp_path(name)
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def describe(self, names: Sequence[str] = ARTEFACTS) -> tuple[GuestFile, ...]:
        return tuple(
            GuestFile(name, self.pending[name].stat().st_size, sha256_file(self.pending[name])) for name in names
        )

    def commit(self, manifest: GuestManifest) -> None:
        """Drop the old manifest, rename every artefact into place, then write the manifest."""
        (self.out_dir / MANIFEST_NAME).unlink(missing_ok=True)
        for name, tmp in list(self.pending.items()):
            tmp.chmod(0o644)
            os.replace(tmp, self.out_dir / name)
            del self.pending[name]
        self.write(MANIFEST_NAME, (json.dumps(manifest.to_json(), indent=2) + "\n").encode())
        tmp = self.pending.pop(MANIFEST_NAME)
        tmp.chmod(0o644)
        os.replace(tmp, self.out_dir / MANIFEST_NAME)

    def discard(self) -> None:
        for tmp in self.pending.values():
            tmp.unlink(missing_ok=True)
        self.pending.clear()


# --------------------------------------------------------------------------- build


@contextlib.asynccontextmanager
async def build_lock(out_dir: Path) -> AsyncIterator[None]:
    with (out_dir / ".build.lock").open("a") as fh:
        await asyncio.to_thread(fcntl.flock, fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


async def build_guest(out_dir: Path, *, force: bool = False) -> GuestManifest:
    """Build (or reuse, unless ``force``) the guest image in ``out_dir``; return its manifest."""
    return await build_or_reuse(out_dir, force, lambda d: verify_image(d), _build)


async def build_or_reuse(
    out_dir: Path, force: bool, verify: Callable[[Path], GuestManifest | None],
    build: Callable[[Path], Coroutine[Any, Any, GuestManifest]],
) -> GuestManifest:
    """Under the directory's build lock: the image ``verify`` accepts (unless ``force``), else ``build``."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    async with build_lock(out_dir):
        if not force:
            existing = await asyncio.to_thread(verify, out_dir)
            if existing is not None:
                log.info("image %s in %s is up to date (%s)", existing.name, out_dir, existing.kernel_version)
                return existing
        started = time.monotonic()
        manifest = await build(out_dir)
        log.info("built image %s in %s in %.1fs", manifest.name, out_dir, time.monotonic() - started)
        return manifest


async def _build(out_dir: Path) -> GuestManifest:
    cache = out_dir / ".cache"
    cache.mkdir(exist_ok=True)
    kernel_package = await resolve_kernel_package()
    kernel_deb = await fetch_deb(kernel_package, cache)
    busybox_deb = await fetch_deb(BUSYBOX_PACKAGE, cache)
    _prune_cache(cache, keep={kernel_deb, busybox_deb})
    staging = Staging(out_dir)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir))
    try:
        kernel = await unpack_kernel(kernel_deb, kernel_package, work / "kernel")
        await run(["dpkg-deb", "-x", str(busybox_deb), str(work / "busybox")])
        busybox = work / "busybox/bin/busybox"
        applets = await busybox_applets(busybox)
        modules = await _write_artefacts(staging, work, kernel, busybox, applets)
        manifest = GuestManifest(
            name=IMAGE_NAME,
            kernel_version=kernel.version,
            kernel_package=kernel.package,
            kernel_package_version=kernel.package_version,
            busybox_version=await deb_version(busybox_deb),
            recipe=builder_recipe(),
            modules=tuple(modules),
            files=await asyncio.to_thread(staging.describe),
        )
        await asyncio.to_thread(staging.commit, manifest)
        return manifest
    finally:
        staging.discard()
        await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)


def _prune_cache(cache: Path, keep: set[Path]) -> None:
    """Remove cached .debs of older kernels / busybox versions."""
    for deb in cache.glob("*.deb"):
        if deb not in keep:
            deb.unlink(missing_ok=True)


async def _write_artefacts(
    staging: Staging, work: Path, kernel: KernelTree, busybox: Path, applets: Sequence[str]
) -> list[str]:
    """Write vmlinux, bzImage, initramfs and rootfs to staging; return the module load order."""
    bzimage = await asyncio.to_thread(kernel.bzimage.read_bytes)
    await asyncio.to_thread(staging.write, BZIMAGE, bzimage)
    await asyncio.to_thread(lambda: staging.write(VMLINUX, extract_vmlinux(bzimage)))
    modules = await stage_initramfs(work / "initramfs", busybox, applets, kernel)
    await asyncio.to_thread(lambda: staging.write(INITRAMFS, build_initramfs(work / "initramfs")))
    await asyncio.to_thread(stage_rootfs, work / "rootfs", busybox, applets)
    disk = staging.temp_path(ROOTFS)
    mkfs = ["mkfs.ext4", "-q", "-F", "-L", ROOT_DISK_LABEL, "-E", "root_owner=0:0"]
    await run([*mkfs, "-d", str(work / "rootfs"), str(disk), ROOT_DISK_SIZE])
    return modules


# --------------------------------------------------------------------------- CLI


def builder_main(
    description: str, build: Callable[[Path, bool], Coroutine[Any, Any, GuestManifest]], argv: Sequence[str] | None
) -> int:
    """The command line of an image builder: ``--out DIR [--force]``, the manifest printed as JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True, type=Path, help="image directory")
    parser.add_argument("--force", action="store_true", help="rebuild even if the image is valid")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        manifest = asyncio.run(build(args.out, args.force))
    except GuestBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(manifest.to_json(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plasmavmc.images.guest.build --out DIR [--force]``."""
    return builder_main("Build the plasmavmc-tiny guest image.", lambda out, force: build_guest(out, force=force),
                        argv)


if __name__ == "__main__":
    sys.exit(main())
