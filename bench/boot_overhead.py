"""What PlasmaVMC adds to a QEMU boot: the same guest booted by raw QEMU and through the API.

    .venv/bin/python -m bench.boot_overhead [--runs 5]

* raw: `qemu-img create` of the qcow2 overlay, then QEMU exec'd with the argv `cmdline.build_argv`
  makes for the VM (the backend's own builder: same machine, devices, kernel, initrd, command line),
  timed until the guest's readiness line is in its serial log;
* api: CreateVm + StartVm over gRPC to a real server and agent, then GetConsole (follow) until the
  same readiness line.

Runs alternate (raw, api, raw, api, ...) so a drift in host load hits both alike. Prints one JSON
document with both medians, every sample and the ratio api/raw (the target is <= 1.05).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import emit, median
from plasmavmc.client import PlasmaClient
from plasmavmc.hypervisor import cloudinit
from plasmavmc.hypervisor.base import LocalImage
from plasmavmc.hypervisor.console import SerialConsole
from plasmavmc.hypervisor.process import read_pidfile, run_daemonizing
from plasmavmc.hypervisor.qemu import cmdline, disks
from plasmavmc.hypervisor.qemu.accel import choose_accelerator, host_tsc_khz
from plasmavmc.hypervisor.qemu.runtime import RuntimePaths
from plasmavmc.images.guest.build import build_guest
from plasmavmc.types.vm import VirtualMachine
from tests.conftest import GUEST_DIR, start_cluster
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec

DEADLINE_S = 120.0


async def _guest() -> LocalImage:
    m = await build_guest(GUEST_DIR)
    return LocalImage(image_id="plasmavmc-tiny", disk_path=GUEST_DIR / m.root_disk,
                      disk_format=m.root_disk_format, kernel_path=GUEST_DIR / m.kernel,
                      initrd_path=GUEST_DIR / m.initrd, kernel_cmdline=m.cmdline)


async def raw_boot(work: Path, image: LocalImage, run: int) -> float:
    name = f"raw-{run}"
    vm = VirtualMachine(id=str(uuid.uuid4()), name=name, org_id=ORG, project_id=PROJECT, spec=tiny_spec())
    return await raw_boot_vm(work, vm, image, re.escape(f"PLASMAVMC-READY name={name} ".encode()), DEADLINE_S)


async def raw_boot_vm(work: Path, vm: VirtualMachine, image: LocalImage, ready: bytes, deadline_s: float) -> float:
    """Seconds from the overlay's `qemu-img create` to `ready` (a regex) in the serial log of QEMU exec'd with the
    backend's argv for `vm` (its cloud-init seed written first, as the backend does at start)."""
    qemu, qemu_img = shutil.which("qemu-system-x86_64"), shutil.which("qemu-img")
    assert qemu and qemu_img, "QEMU is not installed"
    paths = RuntimePaths.of(work, vm.id)
    paths.root.mkdir(parents=True)
    accel = choose_accelerator("auto")
    argv = cmdline.build_argv(qemu, vm, paths, image, accel, tsc_khz=host_tsc_khz())
    console = SerialConsole(paths.console_log, paths.console_sock, alive=lambda: True)
    began = time.perf_counter()
    await disks.create_overlay(qemu_img, paths.disk("root"), image.disk_path, image.disk_format,
                               vm.spec.disks[0].size_gib)
    cloudinit.write_seed(paths.root, vm)
    result = await run_daemonizing(argv, cwd=paths.root, within_s=30)
    assert result.returncode == 0, result.stderr
    seen = b""
    try:
        async with asyncio.timeout(deadline_s):
            while not paths.console_log.exists():
                await asyncio.sleep(0.01)  # QEMU creates it while starting
            while not re.search(ready, seen):
                seen += await console.read()
        return time.perf_counter() - began
    finally:
        await console.close()
        if (pid := read_pidfile(paths.pidfile)) is not None:
            os.kill(pid, signal.SIGKILL)


async def api_boot(client: PlasmaClient, run: int) -> float:
    name = f"api-{run}"
    began = time.perf_counter()
    vm = await client.create_vm(name, ORG, PROJECT, tiny_spec())
    await client.start_vm(ORG, PROJECT, vm.id)
    await console_until(client, vm.id, f"PLASMAVMC-READY name={name} ", timeout=DEADLINE_S)
    elapsed = time.perf_counter() - began
    await client.delete_vm(ORG, PROJECT, vm.id, force=True)
    return elapsed


async def alternate(seed_dir: Path, runs: int, raw: Callable[[Path, int], Awaitable[float]],
                    api: Callable[[PlasmaClient, int], Awaitable[float]],
                    warm_up: Callable[[PlasmaClient], Awaitable[object]]) -> tuple[list[float], list[float]]:
    """`runs` raw and API boots, alternating, against a real server and agent seeded from `seed_dir`;
    `warm_up` runs first (the node's image cache fetches the image once). Returns both sample lists."""
    raw_s: list[float] = []
    api_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="boot-bench-") as tmp:
        work = Path(tmp)
        (work / "cluster").mkdir()
        cluster = start_cluster(work / "cluster", seed_dir, ready_timeout=300)
        try:
            async with await PlasmaClient.connect(cluster.api) as client:
                await warm_up(client)
                for run in range(runs):
                    raw_s.append(await raw(work / "raw", run))
                    api_s.append(await api(client, run))
        finally:
            cluster.stop()
    return raw_s, api_s


async def main(runs: int) -> None:
    image = await _guest()
    raw, api = await alternate(GUEST_DIR, runs, lambda work, run: raw_boot(work, image, run), api_boot,
                               lambda client: api_boot(client, -1))
    emit_ratio("boot_overhead", "seconds from create to the guest's readiness line", raw, api)


def emit_ratio(name: str, unit: str, raw: list[float], api: list[float], digits: int = 3) -> None:
    """Print both medians, every sample and the ratio api/raw (target <= 1.05) as the benchmark's JSON."""
    emit(name, runs=len(raw), unit=unit,
         raw_qemu_median_s=round(median(raw), digits), api_median_s=round(median(api), digits),
         ratio_api_over_raw=round(median(api) / median(raw), 3), target_ratio=1.05,
         raw_samples_s=[round(x, digits) for x in raw], api_samples_s=[round(x, digits) for x in api])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
