"""Per-VM host overhead: finding guest RAM in a process's mappings, the TCG cache cap on QEMU's
command line, and the memory each VM claims on its node (guest + `[scheduler] vm_memory_overhead_mib`)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from plasmavmc.config.schema import ConfigError
from plasmavmc.config.server import VM_MEMORY_OVERHEAD_MIB, SchedulerSettings
from plasmavmc.hypervisor import footprint
from plasmavmc.hypervisor.footprint import MIB, FootprintMeter, _Mapping, guest_mappings
from plasmavmc.hypervisor.qemu.cmdline import accel_arg
from plasmavmc.scheduler import build
from plasmavmc.scheduler.filters import ResourceFilter
from plasmavmc.scheduler.framework import Cycle, NodeView, request_of
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.types.vm import HypervisorType, MemorySpec, VirtualMachine, VmSpec
from tests.unit.test_config import agent, server


def test_guest_ram_found_in_this_process() -> None:
    """A 64 MiB anonymous mapping of which 24 MiB are touched stands for guest RAM: it is found, its
    resident part counted as guest, the rest of the process as overhead."""
    size = 64 * MIB
    with mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) as ram:
        ram.madvise(mmap.MADV_DONTDUMP)  # its own flags: the kernel cannot merge it with a neighbour, as for a VMM
        for offset in range(0, 24 * MIB, mmap.PAGESIZE):
            ram[offset] = 1
        figure = footprint.measure(os.getpid(), size)
    assert 24 * MIB <= figure.guest_rss <= 25 * MIB
    assert figure.rss >= figure.guest_rss + figure.overhead_rss_mib * MIB
    assert figure.overhead_rss_mib > 0 and figure.pss > 0
    assert footprint.usage_fields(figure)["memory_overhead_rss_mib"] == figure.overhead_rss_mib


def test_gone_process_and_unknown_layout() -> None:
    assert footprint.measure(2**22 + 7, MIB) == footprint.Footprint()  # beyond pid_max: no such process
    assert guest_mappings([_Mapping(5 * MIB, 1), _Mapping(7 * MIB, 2)], 64 * MIB) == []  # over-states, never hides


def test_guest_ram_split_in_two_mappings() -> None:
    """Firecracker maps RAM below and above the 32-bit MMIO gap separately: two mappings adding up."""
    low, high, other = _Mapping(3072 * MIB, 10), _Mapping(1024 * MIB, 20), _Mapping(32 * MIB, 30)
    assert guest_mappings([other, low, high], 4096 * MIB) == [low, high]
    one = _Mapping(256 * MIB + 4096, 5)  # a guard page more than the guest's size
    assert guest_mappings([other, one], 256 * MIB) == [one]


def test_meter_reads_again_when_old_or_another_pid() -> None:
    meter = FootprintMeter(max_age_s=3600)
    first = meter.sample("vm", os.getpid(), 1)
    assert meter.sample("vm", os.getpid(), 1) is first  # cached
    assert meter.sample("vm", 2**22 + 7, 1) == footprint.Footprint()  # a new run: read again
    meter.forget("vm")
    assert meter.sample("vm", os.getpid(), 1) is not first


def test_tcg_cache_cap_on_the_command_line() -> None:
    assert accel_arg("tcg", 32) == "tcg,tb-size=32"
    assert accel_arg("tcg", 0) == "tcg"  # QEMU's own default
    assert accel_arg("kvm", 32) == "kvm"  # no translation cache under KVM


def test_tb_size_config_is_validated(tmp_path: Path) -> None:
    assert agent('[agent]\nnode_id = "n1"\n', tmp_path).hypervisors.kvm.tcg_tb_size_mib == 64
    ok = agent('[agent]\nnode_id = "n1"\n[hypervisors.kvm]\ntcg_tb_size_mib = 16\n', tmp_path)
    assert ok.hypervisors.kvm.tcg_tb_size_mib == 16
    with pytest.raises(ConfigError, match="tcg_tb_size_mib"):
        agent('[agent]\nnode_id = "n1"\n[hypervisors.kvm]\ntcg_tb_size_mib = -1\n', tmp_path)


def vm(hypervisor: HypervisorType, mib: int = 1024) -> VirtualMachine:
    return VirtualMachine(id="v", name="v", org_id="o", project_id="p", hypervisor=hypervisor,
                          spec=VmSpec(memory=MemorySpec(size_mib=mib)))


def test_each_vm_claims_its_hypervisors_overhead() -> None:
    scheduler = build(SchedulerSettings())
    assert scheduler.request(vm(HypervisorType.KVM)).memory_mib == 1024 + VM_MEMORY_OVERHEAD_MIB["kvm"]
    assert scheduler.request(vm(HypervisorType.FIRECRACKER)).memory_mib == 1024 + VM_MEMORY_OVERHEAD_MIB["firecracker"]
    assert scheduler.request(vm(HypervisorType.SIMULATED)).memory_mib == 1024
    assert request_of(vm(HypervisorType.KVM)).memory_mib == 1024  # without a table: the guest only
    exact = Node(id="n", allocatable=NodeCapacity(8, 1024, 100))  # fits the guest, not guest + overhead
    assert ResourceFilter().check(scheduler.cycle(vm(HypervisorType.KVM)), NodeView(exact)) is not None
    assert ResourceFilter().check(Cycle.of(vm(HypervisorType.KVM)), NodeView(exact)) is None


def test_overhead_table_is_validated(tmp_path: Path) -> None:
    custom = server("[scheduler.vm_memory_overhead_mib]\nkvm = 100\n", tmp_path)
    assert custom.scheduler.vm_memory_overhead_mib == {**VM_MEMORY_OVERHEAD_MIB, "kvm": 100}
    for bad in ("xen = 10", "kvm = -1", "kvm = 70000", 'kvm = "x"'):
        with pytest.raises(ConfigError, match="vm_memory_overhead_mib"):
            server(f"[scheduler.vm_memory_overhead_mib]\n{bad}\n", tmp_path)
