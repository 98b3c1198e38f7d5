"""The BIOS test guest: a boot sector (`mbr.S`, assembled with binutils at test time) on a 1 MiB raw disk,
for hypervisors that boot only by firmware (mvisor). It prints `READY` on COM1 and halts."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

READY = b"PLASMAVMC-BIOS-GUEST READY"
DISK_BYTES = 1024 * 1024
_SOURCE = Path(__file__).with_name("mbr.S")


async def _run(*argv: str, cwd: Path) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {err.decode(errors='replace')}")


async def build_disk(out: Path) -> Path:
    """Assemble the boot sector and write it as the first sector of a raw disk at `out`."""
    work = out.parent / f".{out.name}.build"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(_SOURCE, work / "mbr.S")
    await _run("as", "--32", "-o", "mbr.o", "mbr.S", cwd=work)
    await _run("ld", "-m", "elf_i386", "-Ttext", "0x7c00", "--oformat", "binary", "-o", "mbr.bin", "mbr.o", cwd=work)
    boot = (work / "mbr.bin").read_bytes()
    assert len(boot) == 512 and boot.endswith(b"\x55\xaa"), "the boot sector must be 512 bytes with a signature"
    await asyncio.to_thread(_write_disk, out, boot)
    shutil.rmtree(work)
    return out


def _write_disk(out: Path, boot: bytes) -> None:
    with open(out, "wb") as f:
        f.write(boot)
        f.truncate(DISK_BYTES)
