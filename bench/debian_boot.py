"""create → SSH-ready seconds of the debian-12 cloud image, through the API and by raw QEMU, in one run.

    nice -n 10 .venv/bin/python -m bench.debian_boot [--runs 3]

* raw: `qemu-img create` of the overlay, the cloud-init seed written, QEMU exec'd with the argv
  `cmdline.build_argv` makes for the same VM (microvm, the image's kernel/initrd/command line, the seed
  drive) — `boot_overhead.raw_boot_vm`;
* api: CreateVm (with `spec.cloud_init`: an SSH key) + StartVm over gRPC to a real server and agent, then
  GetConsole (follow).

SSH-ready is cloud-init's `Cloud-init v. … finished` line on the serial console: cloud-final runs after
sshd has started and the key is installed. No NIC on either side (the raw boot has no network provider),
so this measures what the control plane adds, not DHCP. Runs alternate raw/api; prints JSON with both
medians, every sample and the ratio api/raw (target <= 1.05).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

from bench.boot_overhead import alternate, emit_ratio, raw_boot_vm
from plasmavmc.client import PlasmaClient
from plasmavmc.hypervisor.base import LocalImage
from plasmavmc.images.debian.build import IMAGE_NAME, build_debian
from plasmavmc.types.vm import CloudInitSpec, CpuSpec, DiskSource, DiskSpec, MemorySpec, VirtualMachine, VmSpec
from tests.e2e.helpers import ORG, PROJECT, console_until
from tests.e2e.test_debian_guest import DEBIAN_DIR

DEADLINE_S = 1200.0
READY = rb"Cloud-init v\. \S+ finished"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenchBen bench"


def spec() -> VmSpec:
    disk = DiskSpec(id="root", source=DiskSource(image_id=IMAGE_NAME), size_gib=2)
    return VmSpec(cpu=CpuSpec(vcpus=1), memory=MemorySpec(size_mib=512), disks=(disk,),
                  cloud_init=CloudInitSpec(ssh_authorized_keys=(KEY,)))


async def _image() -> LocalImage:
    m = await build_debian(DEBIAN_DIR)
    return LocalImage(image_id=IMAGE_NAME, disk_path=DEBIAN_DIR / m.root_disk, disk_format=m.root_disk_format,
                      kernel_path=DEBIAN_DIR / m.kernel, initrd_path=DEBIAN_DIR / m.initrd,
                      kernel_cmdline=m.cmdline)


async def raw_boot(work: Path, image: LocalImage, run: int) -> float:
    vm = VirtualMachine(id=str(uuid.uuid4()), name=f"raw-{run}", org_id=ORG, project_id=PROJECT, spec=spec())
    return await raw_boot_vm(work, vm, image, READY, DEADLINE_S)


async def api_boot(client: PlasmaClient, run: int) -> float:
    began = time.perf_counter()
    vm = await client.create_vm(f"api-{run}", ORG, PROJECT, spec())
    await client.start_vm(ORG, PROJECT, vm.id)
    await console_until(client, vm.id, READY.decode(), timeout=DEADLINE_S)
    elapsed = time.perf_counter() - began
    await client.delete_vm(ORG, PROJECT, vm.id, force=True)
    return elapsed


async def warm_up(client: PlasmaClient) -> None:
    """Create and delete one VM: the node's image cache fetches the image (not part of a boot)."""
    vm = await client.create_vm("warm-up", ORG, PROJECT, spec())
    await client.delete_vm(ORG, PROJECT, vm.id, force=True)


async def main(runs: int) -> None:
    image = await _image()
    raw, api = await alternate(DEBIAN_DIR, runs, lambda work, run: raw_boot(work, image, run), api_boot, warm_up)
    emit_ratio("debian_boot", "seconds from create to cloud-init's finished line (SSH-ready)", raw, api, 2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
