"""`images/qemu_img.py` against the real `qemu-img`: formats come from content, images that would make
QEMU open another host file are refused, conversion keeps every byte."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from plasmavmc.errors import InvalidArgument
from plasmavmc.images import qemu_img
from plasmavmc.types.image import ImageFormat
from tests import binaries

pytestmark = binaries.require("qemu-img")


def make(path: Path, *args: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", *args, str(path), "1M"], check=True)
    return path


async def test_format_comes_from_content_not_name(tmp_path: Path) -> None:
    disguised = make(tmp_path / "disk.raw", "-f", "qcow2")
    assert (await qemu_img.inspect(disguised)).format == ImageFormat.QCOW2
    raw = tmp_path / "disk.qcow2"
    raw.write_bytes(os.urandom(65536))
    info = await qemu_img.inspect(raw)
    assert (info.format, info.virtual_size) == (ImageFormat.RAW, 65536)


@pytest.mark.parametrize("fmt", ["vmdk", "vpc"])
async def test_vmdk_and_vhd_are_recognised(tmp_path: Path, fmt: str) -> None:
    info = await qemu_img.inspect(make(tmp_path / "disk", "-f", fmt))
    assert info.format == {"vmdk": ImageFormat.VMDK, "vpc": ImageFormat.VHD}[fmt]


async def test_qcow2_with_backing_file_is_refused(tmp_path: Path) -> None:
    evil = make(tmp_path / "evil.qcow2", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd")
    with pytest.raises(InvalidArgument, match="backing file") as err:
        await qemu_img.inspect(evil, "chunk")
    assert err.value.field == "chunk"


async def test_qcow2_with_external_data_file_is_refused(tmp_path: Path) -> None:
    evil = make(tmp_path / "evil.qcow2", "-f", "qcow2", "-o", f"data_file={tmp_path / 'elsewhere.data'}")
    with pytest.raises(InvalidArgument, match="data file"):
        await qemu_img.inspect(evil)


async def test_vmdk_descriptor_naming_a_host_file_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.vmdk"
    evil.write_text(
        '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n'
        'RW 8 FLAT "/etc/passwd" 0\n\nddb.virtualHWVersion = "4"\n'
    )
    with pytest.raises(InvalidArgument):
        await qemu_img.inspect(evil)


async def test_unsupported_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="unsupported image format"):
        await qemu_img.inspect(make(tmp_path / "disk.vdi", "-f", "vdi"))


async def test_garbage_that_is_not_an_image_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        await qemu_img.inspect(tmp_path / "missing")


async def test_convert_round_trip_through_every_format_keeps_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 512)
    src = tmp_path / "src"
    src.write_bytes(data)
    current, fmt = src, ImageFormat.RAW
    for target in (ImageFormat.VHD, ImageFormat.VMDK, ImageFormat.QCOW2, ImageFormat.RAW):
        out = tmp_path / f"as-{target.value}"
        await qemu_img.convert(current, fmt, out, target)
        assert (await qemu_img.inspect(out)).format == target
        current, fmt = out, target
    assert current.read_bytes() == data
    assert not list(tmp_path.glob(".*"))  # no temporary file left
