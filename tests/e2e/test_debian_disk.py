"""The loop-device-free disk builder of the debian-12 image (`images/debian/disk.py`) on a small tree:
the partition table `sfdisk` wrote into a file, GRUB's boot.img and core.img placed with plain writes, and
a real firmware boot of the result on QEMU q35 (SeaBIOS → boot.img → core.img → the grub.cfg inside the
ext4 partition, which prints a marker on the serial port). Seconds, unlike a Debian boot."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from plasmavmc.images.debian import disk, rootfs
from tests import binaries

pytestmark = [binaries.require("sfdisk", "grub-mkimage", "mkfs.ext4", "qemu-system-x86_64"),
              pytest.mark.timeout(300)]
MARKER = "PLASMAVMC-GRUB-CFG-RAN"


def _tree(root: Path) -> None:
    (root / "boot/grub").mkdir(parents=True)
    (root / "boot/grub/grub.cfg").write_text(
        "serial --unit=0 --speed=115200\nterminal_output serial\n"
        f"echo {MARKER}\n")


def test_disk_layout_and_grub_boot(tmp_path: Path) -> None:
    _tree(tmp_path / "root")
    fs_uuid = str(uuid.uuid4())
    part, image = tmp_path / "root.ext4", tmp_path / "disk.raw"
    asyncio.run(disk.make_ext4(tmp_path / "root", part, 16 << 20, fs_uuid, "t-root"))
    asyncio.run(disk.make_disk(part, image, tmp_path))
    data = image.read_bytes()
    assert data[510:512] == b"\x55\xaa"
    assert data[:disk.MBR_CODE] == (disk.GRUB_DIR / "boot.img").read_bytes()[:disk.MBR_CODE]
    assert data[disk.SECTOR:disk.SECTOR + 16] == (tmp_path / "core.img").read_bytes()[:16]
    table = subprocess.run(["sfdisk", "-d", str(image)], capture_output=True, text=True, check=True).stdout
    assert f"start=        {disk.PART_START}, size=       32768, type=83, bootable" in table
    offset = disk.PART_START * disk.SECTOR
    assert data[offset:offset + (16 << 20)] == part.read_bytes()
    serial = tmp_path / "serial.log"
    proc = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "64", "-nodefaults", "-display",
         "none", "-serial", f"file:{serial}", "-drive", f"file={image},format=raw,if=none,id=d0",
         "-device", "virtio-blk-pci,drive=d0,bootindex=0"], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if serial.exists() and MARKER in serial.read_text(errors="replace"):
                break
            time.sleep(0.2)  # polling QEMU's serial log with a deadline
        assert serial.exists() and MARKER in serial.read_text(errors="replace"), serial.read_bytes()[-2000:]
    finally:
        proc.kill()
        proc.wait()


def test_grub_cfg_and_cmdline_name_the_filesystem() -> None:
    cfg = rootfs.grub_cfg("1234-uuid", "6.1.0-50-amd64")
    assert "linux /boot/vmlinuz-6.1.0-50-amd64 root=UUID=1234-uuid ro console=ttyS0,115200" in cfg
    assert "initrd /boot/initrd.img-6.1.0-50-amd64" in cfg and "set timeout=0" in cfg
    argv = rootfs.mmdebstrap_argv(Path("/x/root"))
    assert argv[0] == "mmdebstrap" and argv[-3:] == ["bookworm", "/x/root", rootfs.MIRROR]
    assert any(a.startswith("--include=") and "cloud-init" in a and "openssh-server" in a for a in argv)
