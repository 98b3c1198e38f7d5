"""Which accelerator QEMU uses on this node: `kvm` only where hardware virtualisation really works.

`/dev/kvm` alone proves nothing: the PVM module (`kvm_pvm`) provides it as a software nested mode in
which a stock Linux guest never reaches user space (see DESIGN "Facts about these machines"). So
`auto` picks `kvm` only when `/dev/kvm` exists *and* a hardware KVM module (`kvm_intel`, `kvm_amd`) is
loaded, and `tcg` otherwise. The root of the filesystem is a parameter so tests can hand in a fake
`/dev` + `/sys` tree.
"""

from __future__ import annotations

import re
from pathlib import Path

from plasmavmc.errors import HypervisorError

ACCELERATORS = ("auto", "kvm", "tcg")
_HARDWARE_MODULES = ("kvm_intel", "kvm_amd")


def hardware_kvm(root: Path = Path("/")) -> bool:
    """True when /dev/kvm exists and is backed by a hardware virtualisation module."""
    if not (root / "dev/kvm").exists():
        return False
    return any((root / "sys/module" / mod).is_dir() for mod in _HARDWARE_MODULES)


def host_tsc_khz(root: Path = Path("/")) -> int | None:
    """The host TSC rate in kHz (a TCG guest's TSC ticks at it), or None when it cannot be found."""
    sysfs = root / "sys/devices/system/cpu/cpu0/tsc_freq_khz"
    try:
        if sysfs.exists():
            return int(sysfs.read_text())
        match = re.search(r"^cpu MHz\s*:\s*([\d.]+)", (root / "proc/cpuinfo").read_text(), re.MULTILINE)
    except (OSError, ValueError):
        return None
    return round(float(match.group(1)) * 1000) if match else None


def choose_accelerator(requested: str, root: Path = Path("/")) -> str:
    """Resolve `auto`/`kvm`/`tcg` to the accelerator QEMU gets; an impossible explicit `kvm` is an error."""
    if requested not in ACCELERATORS:
        raise HypervisorError(f"unknown accelerator {requested!r}: expected one of {', '.join(ACCELERATORS)}")
    if requested == "tcg":
        return "tcg"
    if requested == "kvm":
        if not (root / "dev/kvm").exists():
            raise HypervisorError("accelerator kvm requested but /dev/kvm does not exist on this node")
        return "kvm"
    return "kvm" if hardware_kvm(root) else "tcg"
