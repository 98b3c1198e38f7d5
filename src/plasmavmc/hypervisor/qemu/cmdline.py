"""The QEMU argv builder: a pure function from (VM, runtime paths, boot image, accelerator) to `list[str]`.

It also owns what that argv can express (`check_spec`), so `QemuBackend.supports` and the builder can
never disagree. Safety rules, because the VM spec comes from users:

* argv is a list, never a shell string; every user-derived value is one element.
* QEMU parses `-drive`, `-device`, `-chardev`, `-netdev`, `-name` values as comma-separated options, so
  nothing user-supplied reaches them unvalidated: disk and NIC ids must match `[a-z0-9][a-z0-9._-]*`,
  the VM name `[A-Za-z0-9][A-Za-z0-9._-]*`, the VM id is a UUID; paths (derived from the operator's
  runtime dir) have commas doubled, QEMU's own escape.
* The kernel command line is a single `-append` element (QEMU does not option-parse it); the user's
  `boot.kernel_args` are still refused if they hold control characters.

Machines: `microvm` (default: virtio-mmio devices, ACPI on so `system_powerdown` reaches the guest,
no option ROMs — the fastest boot, no hot-plug) and `q35` (virtio-*-pci devices; boots the kernel
through SeaBIOS, or, without a kernel, the disk with the lowest boot index). On q35 every disk and NIC
sits on its own PCIe root port, plus `SPARE_PORTS` empty ones, so each can be hot-unplugged and new
ones hot-plugged (`pci_ports` is the one place that lays them out; `hotplug.py` uses it too).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from plasmavmc.config.agent import KvmSettings
from plasmavmc.errors import InvalidArgument
from plasmavmc.hypervisor.base import LocalImage, UnsupportedFeature
from plasmavmc.hypervisor.cloudinit import SEED_FILE
from plasmavmc.hypervisor.common import device_id, mac_address, tap_name, vm_name
from plasmavmc.hypervisor.qemu.runtime import RuntimePaths
from plasmavmc.types.vm import DiskBus, DiskSpec, NicModel, VirtualMachine, VmSpec

MACHINES = ("microvm", "q35")
DEFAULT_MACHINE = "microvm"
#: cpu_model values we pass to QEMU; the two "host" spellings mean passthrough (`max` under TCG).
CPU_MODELS = frozenset({
    "host", "host-passthrough", "max", "qemu64", "kvm64", "Nehalem", "Westmere", "SandyBridge",
    "IvyBridge", "Haswell", "Broadwell", "Skylake-Client", "Skylake-Server", "Cascadelake-Server",
    "Icelake-Server", "EPYC", "EPYC-Rome", "EPYC-Milan",
})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MICROVM = "microvm,acpi=on,x-option-roms=off"  # pit/pic off stall this kernel; rtc off slows boot


def opt(value: str) -> str:
    """`value` as one QEMU option value: QEMU reads ",," as a literal comma."""
    return value.replace(",", ",,")


def machine_of(spec: VmSpec) -> str:
    return spec.boot.machine_type or DEFAULT_MACHINE


def sockets_of(spec: VmSpec) -> int:
    """`cpu.sockets`, where 0 (what a plain gRPC client sends when it leaves it unset) means 1."""
    return spec.cpu.sockets or 1


def cores_per_socket(spec: VmSpec) -> int:
    cpu = spec.cpu
    return cpu.cores_per_socket or max(cpu.vcpus // sockets_of(spec), 1)


def check_spec(spec: VmSpec) -> None:
    """Raise `UnsupportedFeature` for anything in `spec` this argv builder cannot express."""
    machine = machine_of(spec)
    if machine not in MACHINES:
        raise UnsupportedFeature("machine_type", f"{machine!r}; this backend runs {', '.join(MACHINES)} "
                                 "(leave it empty for microvm)", field="spec.boot.machine_type")
    cpu, sockets = spec.cpu, sockets_of(spec)
    if cpu.vcpus < 1 or cpu.sockets < 0 or sockets * cores_per_socket(spec) != cpu.vcpus:
        raise UnsupportedFeature("cpu_topology", f"{sockets} sockets x {cores_per_socket(spec)} "
                                 f"cores != {cpu.vcpus} vcpus", field="spec.cpu")
    if cpu.cpu_model is not None and cpu.cpu_model not in CPU_MODELS:
        raise UnsupportedFeature("cpu_model", f"{cpu.cpu_model!r} is not in the allowed list",
                                 field="spec.cpu.cpu_model")
    if spec.memory.numa_nodes:
        raise UnsupportedFeature("numa", "NUMA topology is not supported yet", field="spec.memory.numa_nodes")
    if spec.security.secure_boot:
        raise UnsupportedFeature("secure_boot", "no UEFI secure boot yet", field="spec.security.secure_boot")
    if spec.security.tpm:
        raise UnsupportedFeature("tpm", "no vTPM yet", field="spec.security.tpm")
    for disk in spec.disks:
        if disk.bus is not DiskBus.VIRTIO:
            raise UnsupportedFeature(f"disk_bus_{disk.bus.value}", "only virtio disks are supported",
                                     field="spec.disks.bus")
        if disk.source.volume_id:  # no source at all is a blank disk (AttachDisk)
            raise UnsupportedFeature("volumes", "disks from volumes are not supported yet",
                                     field="spec.disks.source")
    for nic in spec.network:
        if nic.model is not NicModel.VIRTIO_NET and machine == "microvm":
            raise UnsupportedFeature(f"nic_model_{nic.model.value}", "microvm has virtio-net only",
                                     field="spec.network.model")


def cpu_model(spec: VmSpec, accel: str) -> str:
    asked = spec.cpu.cpu_model
    if asked in (None, "host", "host-passthrough"):
        return "host" if accel == "kvm" else "max"  # TCG cannot pass the host CPU through
    return asked


SPARE_PORTS = 4
DEFAULT_TB_SIZE_MIB: int = KvmSettings.tcg_tb_size_mib  # the config default, for callers without settings
MAX_PORTS = 24  # pcie.0 has 32 slots; q35 uses a few itself


def disk_dev(disk_id: str) -> str:
    return f"disk-{disk_id}"


def nic_dev(nic_id: str) -> str:
    return f"nic-{nic_id}"


def pci_ports(spec: VmSpec) -> dict[str, str]:
    """q35: QEMU device id -> root port id for every disk and NIC; microvm: empty (no PCI)."""
    if machine_of(spec) != "q35":
        return {}
    devices = [disk_dev(d.id) for d in spec.disks] + [nic_dev(n.id) for n in spec.network]
    return {dev: f"rp{index}" for index, dev in enumerate(devices)}


def port_count(spec: VmSpec) -> int:
    return min(len(spec.disks) + len(spec.network) + SPARE_PORTS, MAX_PORTS)


def platform_args(spec: VmSpec, accel: str, tsc_khz: int | None) -> list[str]:
    """Kernel arguments the machine needs: microvm has no PCI bus, and no HPET or ACPI PM timer, so
    under TCG the kernel's PIT calibration of the TSC fails now and then on a busy host and boot hangs;
    `tsc_early_khz` (the host's rate, at which the TCG guest TSC ticks) skips that calibration."""
    if machine_of(spec) != "microvm":
        return []
    args = ["pci=off"]
    if accel == "tcg" and tsc_khz:
        args.append(f"tsc_early_khz={int(tsc_khz)}")
    return args


def kernel_cmdline(vm: VirtualMachine, image: LocalImage, accel: str, tsc_khz: int | None) -> str:
    user = vm.spec.boot.kernel_args
    if _CONTROL.search(user):
        raise InvalidArgument("spec.boot.kernel_args", "must not contain control characters")
    parts = [image.kernel_cmdline, *platform_args(vm.spec, accel, tsc_khz),
             f"plasmavmc.vm_name={vm_name(vm.name)}", f"plasmavmc.vm_id={vm.id}", user]
    return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class _Bus:
    blk: str
    net: str
    e1000: str


_BUSES = {"microvm": _Bus("virtio-blk-device", "virtio-net-device", ""),
          "q35": _Bus("virtio-blk-pci", "virtio-net-pci", "e1000")}


def accel_arg(accel: str, tb_size_mib: int) -> str:
    """`-accel`'s value: under TCG with the translation cache capped at `tb_size_mib` (0: QEMU's own
    default, up to 1 GiB per VM, grown as the guest runs new code: the largest per-VM cost beyond guest
    RAM; 64 MiB holds all the tiny guest translates while it boots (no flush), see README "Per-VM overhead")."""
    return f"tcg,tb-size={int(tb_size_mib)}" if accel == "tcg" and tb_size_mib > 0 else accel


def _base(vm: VirtualMachine, paths: RuntimePaths, accel: str, tb_size_mib: int) -> list[str]:
    spec = vm.spec
    machine = _MICROVM if machine_of(spec) == "microvm" else "q35"
    smp = f"{spec.cpu.vcpus},sockets={sockets_of(spec)},cores={cores_per_socket(spec)},threads=1"
    return [
        "-name", f"guest={opt(vm_name(vm.name))},debug-threads=on", "-uuid", str(uuid.UUID(vm.id)),
        "-machine", machine, "-accel", accel_arg(accel, tb_size_mib), "-cpu", cpu_model(spec, accel),
        "-smp", smp, "-m", f"{spec.memory.size_mib}M",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-action", "shutdown=pause",  # the exit watcher records why, then quits (see watch.py)
        "-chardev", f"socket,id=qmp,path={opt(str(paths.qmp))},server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", f"socket,id=qmpev,path={opt(str(paths.qmp_events))},server=on,wait=off",
        "-mon", "chardev=qmpev,mode=control",
        "-chardev", f"socket,id=ser0,path={opt(str(paths.console_sock))},server=on,wait=off,"
                    f"logfile={opt(str(paths.console_log))},logappend=on",
        "-serial", "chardev:ser0",
        "-vnc", f"unix:{opt(str(paths.vnc_sock))}",
        "-pidfile", str(paths.pidfile), "-daemonize",
    ]


def _boot(vm: VirtualMachine, image: LocalImage | None, accel: str, tsc_khz: int | None) -> list[str]:
    if image is None or image.kernel_path is None:
        return []
    argv = ["-kernel", str(image.kernel_path)]
    if image.initrd_path is not None:
        argv += ["-initrd", str(image.initrd_path)]
    return [*argv, "-append", kernel_cmdline(vm, image, accel, tsc_khz)]


def _root_ports(spec: VmSpec) -> list[str]:
    if machine_of(spec) != "q35":
        return []
    argv: list[str] = []
    for index in range(port_count(spec)):
        argv += ["-device", f"pcie-root-port,id=rp{index},chassis={index + 1}"]
    return argv


def _on_port(device: str, ports: dict[str, str], dev_id: str) -> str:
    return f"{device},bus={ports[dev_id]}" if dev_id in ports else device


def _disks(disks: Sequence[DiskSpec], paths: RuntimePaths, bus: _Bus, ports: dict[str, str]) -> list[str]:
    argv: list[str] = []
    for disk in disks:
        did = device_id(disk.id, "spec.disks.id")
        drive = (f"file={opt(str(paths.disk(did)))},format=qcow2,if=none,id=drive-{did},"
                 f"node-name=node-{did},cache={disk.cache.value}")
        device = _on_port(f"{bus.blk},drive=drive-{did},id={disk_dev(did)}", ports, disk_dev(did))
        if ports and disk.boot_index is not None:
            device += f",bootindex={int(disk.boot_index)}"
        argv += ["-drive", drive, "-device", device]
    return argv


def _nics(vm: VirtualMachine, bus: _Bus, ports: dict[str, str]) -> list[str]:
    argv: list[str] = []
    for nic in vm.spec.network:
        nid = device_id(nic.id, "spec.network.id")
        model = bus.net if nic.model is NicModel.VIRTIO_NET else bus.e1000
        device = f"{model},netdev=net-{nid},id={nic_dev(nid)},mac={mac_address(vm.id, nic)}"
        argv += ["-netdev", f"tap,id=net-{nid},ifname={tap_name(vm.id, nid)},script=no,downscript=no",
                 "-device", _on_port(device, ports, nic_dev(nid))]
    return argv


def _seed(vm: VirtualMachine, paths: RuntimePaths, bus: _Bus) -> list[str]:
    """The cloud-init seed (`cloudinit.SEED_FILE`, rebuilt by the backend at each start) as a read-only
    virtio disk after every other; its ids cannot collide with a disk's (`drive-*`, `disk-*`)."""
    if vm.spec.cloud_init is None:
        return []
    seed = opt(str(paths.root / SEED_FILE))
    return ["-drive", f"file={seed},format=raw,if=none,id=cidata-drive,readonly=on",
            "-device", f"{bus.blk},drive=cidata-drive,id=cidata-dev"]


def build_argv(qemu: str, vm: VirtualMachine, paths: RuntimePaths, image: LocalImage | None,
               accel: str, *, tsc_khz: int | None = None, tb_size_mib: int = DEFAULT_TB_SIZE_MIB) -> list[str]:
    """The full QEMU argv for `vm`; `image` is the boot disk's image (its kernel boots directly);
    `tsc_khz` is the host TSC rate (see `platform_args`); `tb_size_mib` caps TCG's cache (`accel_arg`)."""
    check_spec(vm.spec)
    machine = machine_of(vm.spec)
    if machine == "microvm" and (image is None or image.kernel_path is None):
        raise UnsupportedFeature("firmware_boot", "microvm boots a kernel directly and the image has none: "
                                 "use machine_type=q35", field="spec.boot.machine_type")
    bus, ports = _BUSES[machine], pci_ports(vm.spec)
    return [qemu, *_base(vm, paths, accel, tb_size_mib), *_boot(vm, image, accel, tsc_khz), *_root_ports(vm.spec),
            *_disks(vm.spec.disks, paths, bus, ports), *_nics(vm, bus, ports), *_seed(vm, paths, bus)]


def pidfile_marker(paths: RuntimePaths) -> str:
    """The argv fragment that identifies this VM's QEMU in /proc/<pid>/cmdline (its pid-reuse guard)."""
    return str(paths.pidfile)
