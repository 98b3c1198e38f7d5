"""Image throughput and VM-create cost, through a real server + agent on loopback.

    .venv/bin/python -m bench.image_bench [--mib 256] [--large-mib 1024] [--runs 3]

Prints one JSON document: upload and download throughput through the API (UploadImage/DownloadImage,
including sha256, `qemu-img` inspection and the store write) against a plain file copy on the same
disk measured in the same run (`ratio_to_copy`), and VM-create time from a small and a large image,
cold (the agent pulls the image into its cache) and warm (cached: only a qcow2 overlay is made).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from bench.common import emit, median, timer
from plasmavmc.client import PlasmaClient
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, MemorySpec, VmSpec
from tests.conftest import GUEST_DIR, kill_leftover_qemu, start_cluster

MIB = 1024 * 1024
ORG, PROJECT = "org-bench", "proj-bench"


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(block)


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, MIB):
            yield chunk


async def throughput(client: PlasmaClient, src: Path, work: Path, runs: int) -> dict[str, object]:
    mib = src.stat().st_size / MIB
    copy, up, down = [], [], []
    for _ in range(runs):
        with timer() as t:
            shutil.copyfile(src, work / "copy.img")
        copy.append(t[0])
        (work / "copy.img").unlink()
        with timer() as t:
            image = await client.upload_image(ORG, f"bench-{uuid.uuid4().hex[:8]}", chunks(src))
        up.append(t[0])
        with timer() as t, (work / "down.img").open("wb") as f:
            async for chunk in client.download_image(ORG, image.id):
                await asyncio.to_thread(f.write, chunk)
        down.append(t[0])
        (work / "down.img").unlink()
        await client.delete_image(ORG, image.id)
    copy_rate = mib / median(copy)
    return {
        "size_mib": mib,
        "file_copy_mib_s": round(copy_rate, 1),
        "upload_mib_s": round(mib / median(up), 1),
        "download_mib_s": round(mib / median(down), 1),
        "upload_ratio_to_copy": round(mib / median(up) / copy_rate, 3),
        "download_ratio_to_copy": round(mib / median(down) / copy_rate, 3),
    }


async def create_times(client: PlasmaClient, src: Path, runs: int) -> dict[str, float]:
    image = await client.upload_image(ORG, f"bench-vm-{src.stat().st_size // MIB}", chunks(src))
    spec = VmSpec(
        cpu=CpuSpec(vcpus=1),
        memory=MemorySpec(size_mib=128),
        disks=(DiskSpec(id="root", source=DiskSource(image_id=image.id), size_gib=image.min_disk_gib),),
    )
    times = []
    for i in range(runs + 1):
        with timer() as t:
            vm = await client.create_vm(f"bench-{uuid.uuid4().hex[:8]}", ORG, PROJECT, spec)
        times.append(t[0])
        await client.delete_vm(ORG, PROJECT, vm.id, force=True)
        del i
    return {"cold_s": round(times[0], 3), "warm_median_s": round(median(times[1:]), 3)}


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="plasmavmc-bench-") as tmp:
        root = Path(tmp)
        (root / "cluster").mkdir()
        cluster = start_cluster(root / "cluster", GUEST_DIR)
        try:
            async with await PlasmaClient.connect(cluster.api) as client:
                make_file(root / "big.img", args.mib)
                api = await throughput(client, root / "big.img", root, args.runs)
                make_file(root / "small.img", 10)
                make_file(root / "large.img", args.large_mib)
                small = await create_times(client, root / "small.img", args.runs)
                large = await create_times(client, root / "large.img", args.runs)
        finally:
            cluster.agent.stop()
            cluster.server.stop()
            kill_leftover_qemu(root / "cluster")
    emit(
        "image_bench",
        throughput=api,
        vm_create={
            "10_mib": small,
            f"{args.large_mib}_mib": large,
            "warm_ratio_large_to_small": round(large["warm_median_s"] / small["warm_median_s"], 3),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="size of the throughput image")
    parser.add_argument("--large-mib", type=int, default=1024, help="size of the large VM image")
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
