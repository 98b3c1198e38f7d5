"""Accelerator choice from a fake /dev + /sys tree: PVM-only KVM means TCG."""

from __future__ import annotations

from pathlib import Path

import pytest

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.qemu.accel import choose_accelerator, host_tsc_khz


def fake_root(tmp_path: Path, *, dev_kvm: bool, modules: tuple[str, ...]) -> Path:
    (tmp_path / "dev").mkdir()
    if dev_kvm:
        (tmp_path / "dev/kvm").touch()
    for mod in modules:
        (tmp_path / "sys/module" / mod).mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize(("dev_kvm", "modules", "expected"), [
    (True, ("kvm", "kvm_intel"), "kvm"),
    (True, ("kvm", "kvm_amd"), "kvm"),
    (True, ("kvm", "kvm_pvm"), "tcg"),  # this lab: PVM cannot run a stock Linux guest
    (False, ("kvm", "kvm_intel"), "tcg"),
    (False, (), "tcg"),
])
def test_auto(tmp_path: Path, dev_kvm: bool, modules: tuple[str, ...], expected: str) -> None:
    assert choose_accelerator("auto", fake_root(tmp_path, dev_kvm=dev_kvm, modules=modules)) == expected


def test_explicit_choices(tmp_path: Path) -> None:
    root = fake_root(tmp_path, dev_kvm=True, modules=("kvm_pvm",))
    assert choose_accelerator("kvm", root) == "kvm"  # honoured: the operator asked for it
    assert choose_accelerator("tcg", root) == "tcg"


def test_kvm_without_dev_kvm_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HypervisorError, match="/dev/kvm"):
        choose_accelerator("kvm", fake_root(tmp_path, dev_kvm=False, modules=("kvm_intel",)))
    with pytest.raises(HypervisorError, match="unknown accelerator"):
        choose_accelerator("hvf", tmp_path)


def test_host_tsc_from_cpuinfo(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\ncpu MHz\t\t: 2596.120\n")
    assert host_tsc_khz(tmp_path) == 2596120
    (tmp_path / "sys/devices/system/cpu/cpu0").mkdir(parents=True)
    (tmp_path / "sys/devices/system/cpu/cpu0/tsc_freq_khz").write_text("3000000\n")
    assert host_tsc_khz(tmp_path) == 3000000
