"""The BIOS test guest: a boot sector (`mbr.S`, assembled with binutils at test time) on a 1 MiB raw disk,
for hypervisors that boot only by firmware (mvisor). It prints `READY` on COM1 and halts."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

READY = b"PLASMAVMC-BIOS-GUEST READY"
DISK_BYTES = 1024 * 1024
_SOURCE = Path(__file__).with_name("mbr.S")


def build_disk_now(out: Path) -> Path:
    """Assemble the boot sector and write it as the first sector of a raw disk at `out` (blocking)."""
    work = out.parent / f".{out.name}.build"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(_SOURCE, work / "mbr.S")
    for argv in (["as", "--32", "-o", "mbr.o", "mbr.S"],
                 ["ld", "-m", "elf_i386", "-Ttext", "0x7c00", "--oformat", "binary", "-o", "mbr.bin", "mbr.o"]):
        subprocess.run(argv, cwd=work, check=True, capture_output=True)
    boot = (work / "mbr.bin").read_bytes()
    assert len(boot) == 512 and boot.endswith(b"\x55\xaa"), "the boot sector must be 512 bytes with a signature"
    with open(out, "wb") as f:
        f.write(boot)
        f.truncate(DISK_BYTES)
    shutil.rmtree(work)
    return out


async def build_disk(out: Path) -> Path:
    return await asyncio.to_thread(build_disk_now, out)


MVISOR_BIOS = Path("/usr/local/share/mvisor/bios-256k.bin")
_probe: list[str | None] = []


def mvisor_missing() -> str | None:
    """Why the mvisor backend cannot be tested here at all (None: the binary and its firmware exist)."""
    if shutil.which("mvisor") is None or not MVISOR_BIOS.is_file():
        return ("mvisor is not installed: its source cannot be fetched here; build it with "
                "scripts/install-mvisor SRC_DIR (README, mvisor)")
    return None


def mvisor_cannot_boot(workdir: Path) -> str | None:
    """Why no guest boots under mvisor on this host (None: the BIOS guest reached READY), found once by
    booting it with a 30 s deadline. On a kvm_pvm host mvisor panics at KVM_SET_GSI_ROUTING (ENOTTY)."""
    if _probe:
        return _probe[0]
    from plasmavmc.hypervisor.mvisor import spec
    from plasmavmc.types.vm import DiskSource, DiskSpec, MemorySpec, VirtualMachine, VmSpec

    workdir.mkdir(parents=True, exist_ok=True)
    disk = build_disk_now(workdir / "bios.raw")
    vm = VirtualMachine(id="00000000-0000-4000-8000-000000000001", name="probe", org_id="o", project_id="p",
                        spec=VmSpec(memory=MemorySpec(size_mib=64), disks=(DiskSpec(source=DiskSource("x")),)))
    config = workdir / "probe.yaml"
    config.write_text(spec.to_yaml(spec.configuration(vm, {"root": disk}, MVISOR_BIOS)))
    out, err = workdir / "probe.out", workdir / "probe.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(["stdbuf", "-o0", str(shutil.which("mvisor")), "-c", str(config), "-n", "probe"],
                                stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                env={"DISPLAY": ":none", "PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 30
    while READY not in out.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # polling a child's output file, bounded by the deadline
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    errors = err.read_text(errors="replace")
    panic = next((line for line in errors.splitlines() if "panic" in line or "error" in line), errors[-300:])
    booted = READY in out.read_bytes()
    _probe.append(None if booted else f"mvisor cannot boot a guest on this host: {panic or 'no output'}")
    return _probe[0]
