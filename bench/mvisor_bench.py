"""exec → first serial byte and → READY line of the BIOS test guest (a boot sector) under mvisor and under
QEMU (q35, SeaBIOS, same disk), in one run. Prints JSON. Where mvisor cannot boot a guest (this machine's
kvm_pvm lacks KVM_SET_GSI_ROUTING), its entry says why instead of a figure.

    python -m bench.mvisor_bench [--runs N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests import bios_guest

DEADLINE_S = 60.0


def _time_to(argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Seconds from exec to the first byte on stdout and to the READY line; the process is killed after."""
    out = workdir / "out"
    with open(out, "wb") as f:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    first = None
    try:
        while time.monotonic() - started < DEADLINE_S and proc.poll() is None:
            data = out.read_bytes()
            if data and first is None:
                first = time.monotonic() - started
            if bios_guest.READY in data:
                return first or 0.0, time.monotonic() - started
            time.sleep(0.002)  # sampling a child's output file: the figure's resolution
    finally:
        proc.kill()
        proc.wait()
    raise RuntimeError(f"{argv[0]}: no READY within {DEADLINE_S:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mvbench-"))
    disk = bios_guest.build_disk_now(work / "bios.raw")
    qemu = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "64", "-nographic", "-monitor", "none",
            "-serial", "stdio", "-display", "none", "-drive", f"file={disk},format=raw,if=virtio", "-no-reboot"]
    results: dict[str, object] = {"guest": "BIOS boot sector (tests/bios_guest)", "runs": args.runs}
    samples = [_time_to(qemu, work) for _ in range(args.runs)]
    results["qemu_q35_tcg"] = {"first_byte_s": statistics.median(s[0] for s in samples),
                               "ready_s": statistics.median(s[1] for s in samples)}
    why = bios_guest.mvisor_missing() or bios_guest.mvisor_cannot_boot(work / "probe")
    if why is None:
        from plasmavmc.hypervisor.mvisor import spec
        from plasmavmc.types.vm import DiskSource, DiskSpec, MemorySpec, VirtualMachine, VmSpec

        vm = VirtualMachine(id="00000000-0000-4000-8000-000000000002", name="bench", org_id="o", project_id="p",
                            spec=VmSpec(memory=MemorySpec(size_mib=64), disks=(DiskSpec(source=DiskSource("x")),)))
        config = work / "vm.yaml"
        config.write_text(spec.to_yaml(spec.configuration(vm, {"root": disk}, bios_guest.MVISOR_BIOS)))
        argv = ["stdbuf", "-o0", str(shutil.which("mvisor")), "-c", str(config), "-n", "bench"]
        samples = [_time_to(argv, work, {"DISPLAY": ":none", "PATH": "/usr/bin:/bin"}) for _ in range(args.runs)]
        mv = {"first_byte_s": statistics.median(s[0] for s in samples),
              "ready_s": statistics.median(s[1] for s in samples)}
        results["mvisor"] = mv
        results["ratio_ready_mvisor_to_qemu"] = mv["ready_s"] / results["qemu_q35_tcg"]["ready_s"]  # type: ignore[index]
    else:
        results["mvisor"] = {"skipped": why}
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
