"""The guest kernel from Debian: package download, vmlinux extraction, module dependency order."""

from __future__ import annotations

import gzip
import logging
import lzma
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from plasmavmc.images.guest.tools import GuestBuildError, run

log = logging.getLogger(__name__)

KERNEL_METAPACKAGE = "linux-image-amd64"
APT_OPTIONS = ("-o", "APT::Sandbox::User=root")
XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"
_MODULE_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")


# --------------------------------------------------------------------------- Debian packages


async def resolve_kernel_package() -> str:
    """The versioned kernel package the ``linux-image-amd64`` metapackage currently depends on."""
    out = (await run(["apt-cache", "depends", KERNEL_METAPACKAGE])).decode()
    found = re.findall(r"^\s*Depends:\s*(linux-image-\d\S*-amd64)\s*$", out, re.MULTILINE)
    if not found:
        raise GuestBuildError(f"cannot resolve the kernel from {KERNEL_METAPACKAGE} (apt-get update run?): {out!r}")
    return str(found[0])


async def fetch_deb(package: str, cache: Path) -> Path:
    """A .deb of ``package`` in ``cache``: a cached one, else ``apt-get download``-ed there."""
    cached = sorted(cache.glob(f"{package}_*.deb"))
    if cached:
        return cached[-1]
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        await run(["apt-get", *APT_OPTIONS, "download", package], cwd=Path(tmp))
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if len(debs) != 1:
            raise GuestBuildError(f"apt-get download {package} produced {debs!r}")
        target = cache / debs[0].name
        os.replace(debs[0], target)
    log.info("downloaded %s", target.name)
    return target


async def deb_version(deb: Path) -> str:
    """The Version field of a .deb."""
    return (await run(["dpkg-deb", "--field", str(deb), "Version"])).decode().strip()


# --------------------------------------------------------------------------- kernel


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed ELF kernel: the xz stream embedded in a bzImage, decompressed."""
    start = bzimage.find(XZ_MAGIC)
    while start != -1:
        decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            data = decompressor.decompress(bzimage[start:])
        except lzma.LZMAError:
            data = b""
        if data.startswith(ELF_MAGIC):
            return data
        start = bzimage.find(XZ_MAGIC, start + 1)
    raise GuestBuildError("no xz-compressed ELF kernel found inside the bzImage")


@dataclass(frozen=True)
class ModuleIndex:
    """The module metadata of one kernel: paths, hard deps, soft pre-deps, built-ins."""

    moddir: Path
    paths: Mapping[str, Path]
    deps: Mapping[str, tuple[str, ...]]
    softdeps: Mapping[str, tuple[str, ...]]
    builtin: frozenset[str]


def module_name(path: str) -> str:
    """Kernel module name of a module file path (``crc32c-intel.ko.xz`` -> ``crc32c_intel``)."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and ln[0] != "#"]


def _parse_softdeps(moddir: Path, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``softdep X pre: a b`` -> {X: (a, b)} with aliases resolved to real module names."""
    known = set(names)
    aliases: dict[str, list[str]] = {}
    for line in _read_lines(moddir / "modules.alias"):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias":
            aliases.setdefault(parts[1], []).append(module_name(parts[2]))
    softdeps: dict[str, tuple[str, ...]] = {}
    for line in _read_lines(moddir / "modules.softdep"):
        words = line.split()
        if len(words) < 3 or words[0] != "softdep" or "pre:" not in words:
            continue
        pre = words[words.index("pre:") + 1 :]
        pre = pre[: pre.index("post:")] if "post:" in pre else pre
        resolved = [m for p in pre for m in aliases.get(p, [module_name(p)]) if m in known]
        softdeps[module_name(words[1])] = tuple(dict.fromkeys(resolved))
    return softdeps


def load_module_index(moddir: Path) -> ModuleIndex:
    """Parse modules.dep / modules.softdep / modules.alias / modules.builtin of a kernel."""
    paths: dict[str, Path] = {}
    deps: dict[str, tuple[str, ...]] = {}
    for line in _read_lines(moddir / "modules.dep"):
        target, _, rest = line.partition(":")
        name = module_name(target)
        paths[name] = moddir / target
        deps[name] = tuple(module_name(d) for d in rest.split())
    if not paths:
        raise GuestBuildError(f"no modules.dep in {moddir}")
    builtin = frozenset(module_name(p) for p in _read_lines(moddir / "modules.builtin"))
    softdeps = _parse_softdeps(moddir, paths)
    return ModuleIndex(moddir, paths, deps, softdeps, builtin)


def resolve_load_order(index: ModuleIndex, wanted: Iterable[str]) -> list[str]:
    """Modules to insmod, dependencies first; built-in modules are left out."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, soft: bool) -> None:
        if name in seen or name in index.builtin:
            return
        if name not in index.paths:
            if soft:
                return
            raise GuestBuildError(f"kernel module {name!r} is neither a module nor built in")
        seen.add(name)
        for dep in index.softdeps.get(name, ()):
            visit(dep, True)
        for dep in index.deps[name]:
            visit(dep, False)
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"), False)
    return order


async def read_module(path: Path) -> bytes:
    """A module's bytes, decompressed (busybox insmod loads plain .ko files)."""
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(path.read_bytes())
    if path.name.endswith(".ko.zst"):
        return await run(["zstd", "-d", "-c", "-q", str(path)])
    return path.read_bytes()


@dataclass(frozen=True)
class KernelTree:
    """An unpacked kernel package."""

    package: str
    package_version: str
    version: str
    bzimage: Path
    moddir: Path


async def unpack_kernel(deb: Path, package: str, dest: Path) -> KernelTree:
    """``dpkg-deb -x`` the kernel package and make sure it has a modules.dep (depmod -b)."""
    version = package.removeprefix("linux-image-")
    await run(["dpkg-deb", "-x", str(deb), str(dest)])
    bzimage = dest / "boot" / f"vmlinuz-{version}"
    moddir = next(
        (p for p in (dest / "lib/modules" / version, dest / "usr/lib/modules" / version) if p.is_dir()),
        None,
    )
    if not bzimage.is_file() or moddir is None:
        raise GuestBuildError(f"{deb.name} has no boot/vmlinuz-{version} or modules directory")
    if not (moddir / "modules.dep").exists():
        await run(["depmod", "-b", str(moddir.parents[2]), version])
    return KernelTree(package, await deb_version(deb), version, bzimage, moddir)
