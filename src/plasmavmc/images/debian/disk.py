"""A bootable disk image written to a plain file, without loop devices: one MBR partition holding an ext4
filesystem made by `mkfs.ext4 -d` from a directory, and GRUB for BIOS boot placed the way
`grub-bios-setup` would — `boot.img` in the MBR's code area, `core.img` (from `grub-mkimage`, with every
module the boot needs built in) in the gap before the partition. `core.img`'s first sector already
points at the sectors that follow it and `boot.img` loads sector 1, so no patching is needed.
"""

from __future__ import annotations

from pathlib import Path

from plasmavmc.images.guest.tools import GuestBuildError, run

SECTOR = 512
PART_START = 2048  # sectors: the 1 MiB gap holds core.img
MBR_CODE = 440  # boot.img's code; bytes 440..511 are the disk signature and partition table
GRUB_DIR = Path("/usr/lib/grub/i386-pc")
GRUB_MODULES = ("biosdisk", "part_msdos", "ext2", "normal", "linux", "configfile", "echo", "serial",
                "terminal", "test", "search", "gzio")
GRUB_PREFIX = "(hd0,msdos1)/boot/grub"


def _check_grub() -> None:
    if not (GRUB_DIR / "boot.img").is_file():
        raise GuestBuildError(f"{GRUB_DIR}/boot.img missing: install grub-pc-bin")


async def make_ext4(tree: Path, out: Path, size_bytes: int, fs_uuid: str, label: str) -> None:
    """`out` := an ext4 filesystem of `size_bytes` holding `tree` (owners kept; we run as root)."""
    await run(["mkfs.ext4", "-q", "-F", "-L", label, "-U", fs_uuid, "-d", str(tree), str(out),
               f"{size_bytes // 1024}k"])


async def make_disk(part: Path, out: Path, work: Path) -> None:
    """`out` := a raw disk: MBR, GRUB core.img in the gap, `part` as bootable partition 1."""
    _check_grub()
    part_size = part.stat().st_size
    if part_size % SECTOR:
        raise GuestBuildError(f"{part} is not a whole number of sectors")
    with out.open("wb") as fh:
        fh.truncate(PART_START * SECTOR + part_size)
    table = f"label: dos\nstart={PART_START}, size={part_size // SECTOR}, type=83, bootable\n"
    await run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(out)], stdin=table.encode())
    core = work / "core.img"
    await run(["grub-mkimage", "-O", "i386-pc", "-d", str(GRUB_DIR), "-o", str(core), "-p", GRUB_PREFIX,
               *GRUB_MODULES])
    place_grub((GRUB_DIR / "boot.img").read_bytes(), core.read_bytes(), out)
    await run(["dd", f"if={part}", f"of={out}", "bs=1M", f"seek={PART_START * SECTOR // (1 << 20)}",
               "conv=notrunc,sparse", "status=none"])


def place_grub(boot_img: bytes, core_img: bytes, disk: Path) -> None:
    """Write boot.img's code into the MBR (keeping the partition table) and core.img from sector 1."""
    if len(boot_img) != SECTOR:
        raise GuestBuildError(f"boot.img is {len(boot_img)} bytes, not {SECTOR}")
    if len(core_img) > (PART_START - 1) * SECTOR:
        raise GuestBuildError(f"core.img ({len(core_img)} bytes) does not fit before the partition")
    with disk.open("r+b") as fh:
        fh.seek(0)
        fh.write(boot_img[:MBR_CODE])
        fh.seek(SECTOR)
        fh.write(core_img)
