"""`plasmavmc image ...` as a user runs it (a subprocess against a real server): upload a file,
list/get it, download it back byte for byte, convert it, and delete it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.conftest import Cluster

ORG = "org-cli-img"


async def cli(cluster: Cluster, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "plasmavmc.cli",
        "--addr",
        cluster.api,
        "--org",
        ORG,
        "-o",
        "json",
        "image",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_upload_download_convert_delete(cluster: Cluster, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    src = tmp_path / "disk.img"
    src.write_bytes(data)
    code, out, err = await cli(cluster, "upload", str(src), "--name", "cli-disk")
    assert code == 0, err
    image = json.loads(out)
    assert image["name"] == "cli-disk" and image["format"] == "raw" and image["status"] == "available"

    code, out, _ = await cli(cluster, "list")
    assert code == 0 and image["id"] in {i["id"] for i in json.loads(out)}
    code, out, err = await cli(cluster, "download", image["id"], str(tmp_path / "back.img"))
    assert code == 0, err
    assert (tmp_path / "back.img").read_bytes() == data

    code, out, err = await cli(cluster, "convert", image["id"], "--to", "vmdk")
    assert code == 0, err
    converted = json.loads(out)
    assert converted["format"] == "vmdk" and converted["name"] == "cli-disk-vmdk"

    for image_id in (converted["id"], image["id"]):
        code, _, err = await cli(cluster, "delete", image_id)
        assert code == 0, err
    code, _, err = await cli(cluster, "get", image["id"])
    assert code != 0 and "IMAGE_NOT_FOUND" in err


async def test_bad_upload_names_the_problem(cluster: Cluster, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    src.write_bytes(os.urandom(65536))
    code, _, err = await cli(cluster, "upload", str(src), "--checksum", "0" * 64)
    assert code != 0 and "checksum" in err
