"""Writing cpio archives in the `newc` format the kernel unpacks as an initramfs."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- cpio (newc)


@dataclass(frozen=True)
class CpioEntry:
    """One member of a newc cpio archive."""

    path: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def write_newc(entries: Iterable[CpioEntry]) -> bytes:
    """A newc ("070701") cpio archive, owned by root, mtime 0, with the trailer."""
    out = bytearray()
    trailer = CpioEntry("TRAILER!!!", 0)
    for ino, entry in enumerate([*entries, trailer], start=1):
        name = entry.path.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, *entry.rdev, len(name), 0)
        header = b"070701" + "".join(f"{value:08x}" for value in fields).encode()
        out += header + name + _pad4(len(header) + len(name))
        out += entry.data + _pad4(len(entry.data))
    return bytes(out)


def tree_entries(root: Path) -> list[CpioEntry]:
    """cpio entries for every directory, file and symlink under root (parents first)."""
    entries: list[CpioEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                entries.append(CpioEntry(rel, st.st_mode, os.readlink(path).encode()))
            elif stat.S_ISREG(st.st_mode):
                entries.append(CpioEntry(rel, st.st_mode, path.read_bytes()))
            elif stat.S_ISDIR(st.st_mode):
                entries.append(CpioEntry(rel, st.st_mode))
    # os.walk yields a directory's own entry before descending, so parents precede children.
    return entries
