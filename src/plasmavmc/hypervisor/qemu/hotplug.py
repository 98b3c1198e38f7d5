"""Disk and NIC hot-plug on a running QEMU (q35), over QMP, and the PCIe root-port book-keeping it needs.

Only q35 has hot-plug: microvm's virtio-mmio devices are fixed at boot. On q35 `cmdline.py` puts every
device on its own `pcie-root-port` and adds spare ports; `ports.json` (written at start, updated here)
says which port holds which device in the current run, so a new device gets a free port and a removed
one frees its port. The spec in `vm.json` is updated by the backend after each change, so the next
cold start builds the same devices from argv.

QMP sequences (QEMU 7.2 reference):
* disk: `blockdev-add` {driver qcow2, node-name, file {driver file, filename}, cache} then `device_add`
  {driver virtio-blk-pci, id, drive: node-name, bus: port}; removal: `device_del` {id}, wait for the
  `DEVICE_DELETED` event (the guest acknowledges the unplug), then `blockdev-del` the node if left.
* NIC: `netdev_add` {type tap, id, ifname, script no, downscript no} then `device_add`
  {driver virtio-net-pci, netdev, id, mac, bus}; removal: `device_del`, `DEVICE_DELETED`, `netdev_del`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

from plasmavmc.errors import HypervisorError, InvalidArgument
from plasmavmc.hypervisor import common
from plasmavmc.hypervisor.base import UnsupportedFeature
from plasmavmc.hypervisor.common import write_atomic
from plasmavmc.hypervisor.qemu import cmdline
from plasmavmc.hypervisor.qemu.qmp import QmpSession
from plasmavmc.hypervisor.qemu.runtime import RuntimePaths
from plasmavmc.types.vm import DiskCache, DiskSpec, NetworkSpec, NicModel, VirtualMachine, VmSpec

UNPLUG_TIMEOUT_S = 60.0  # the guest must acknowledge; a busy TCG guest can take several seconds


def require_hotplug(spec: VmSpec) -> None:
    if cmdline.machine_of(spec) != "q35":
        raise UnsupportedFeature("hot_plug", "a running microvm cannot change devices; create the VM with "
                                 "spec.boot.machine_type = \"q35\" for hot-plug", field="spec.boot.machine_type")


def write_ports(paths: RuntimePaths, spec: VmSpec) -> None:
    """Record the root-port layout `cmdline.build_argv` gave this run."""
    total = cmdline.port_count(spec) if cmdline.machine_of(spec) == "q35" else 0
    data = {"total": total, "used": cmdline.pci_ports(spec)}
    write_atomic(paths.ports, json.dumps(data).encode())


def _read_ports(paths: RuntimePaths) -> tuple[int, dict[str, str]]:
    try:
        data = json.loads(paths.ports.read_bytes())
        return int(data["total"]), {str(k): str(v) for k, v in data["used"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HypervisorError(f"PCIe port layout of VM {paths.root.name} unreadable: {exc}") from exc


def _claim_port(paths: RuntimePaths, dev_id: str) -> str:
    total, used = _read_ports(paths)
    taken = set(used.values())
    free = [f"rp{i}" for i in range(total) if f"rp{i}" not in taken]
    if not free:
        raise UnsupportedFeature("hot_plug_slots", f"all {total} hot-plug ports are in use; stop the VM "
                                 "and start it again for more", field="spec")
    used[dev_id] = free[0]
    write_atomic(paths.ports, json.dumps({"total": total, "used": used}).encode())
    return free[0]


def _release_port(paths: RuntimePaths, dev_id: str) -> None:
    total, used = _read_ports(paths)
    used.pop(dev_id, None)
    write_atomic(paths.ports, json.dumps({"total": total, "used": used}).encode())


async def plug_disk(paths: RuntimePaths, disk: DiskSpec) -> None:
    did = common.device_id(disk.id, "disk.id")
    dev = cmdline.disk_dev(did)
    port = _claim_port(paths, dev)
    node = {"driver": "qcow2", "node-name": f"node-{did}",
            "file": {"driver": "file", "filename": str(paths.disk(did))},
            "cache": {"direct": disk.cache is DiskCache.NONE, "no-flush": False}}
    device: dict[str, object] = {"driver": "virtio-blk-pci", "id": dev, "drive": f"node-{did}", "bus": port}
    if disk.cache is DiskCache.WRITETHROUGH:
        device["write-cache"] = "off"
    try:
        async with QmpSession(paths.qmp) as qmp:
            await qmp.execute("blockdev-add", node)
            try:
                await qmp.execute("device_add", device)
            except HypervisorError:
                await qmp.execute("blockdev-del", {"node-name": f"node-{did}"})
                raise
    except HypervisorError:
        _release_port(paths, dev)
        raise


async def plug_nic(paths: RuntimePaths, vm: VirtualMachine, nic: NetworkSpec) -> None:
    nid = common.device_id(nic.id, "nic.id")
    if nic.model is not NicModel.VIRTIO_NET:
        raise UnsupportedFeature(f"nic_model_{nic.model.value}", "hot-plugged NICs are virtio-net",
                                 field="nic.model")
    dev = cmdline.nic_dev(nid)
    mac = common.mac_address(vm.id, nic)
    port = _claim_port(paths, dev)
    netdev = {"type": "tap", "id": f"net-{nid}", "ifname": common.tap_name(vm.id, nid),
              "script": "no", "downscript": "no"}
    device = {"driver": "virtio-net-pci", "id": dev, "netdev": f"net-{nid}", "mac": mac, "bus": port}
    try:
        async with QmpSession(paths.qmp) as qmp:
            await qmp.execute("netdev_add", netdev)
            try:
                await qmp.execute("device_add", device)
            except HypervisorError:
                await qmp.execute("netdev_del", {"id": f"net-{nid}"})
                raise
    except HypervisorError:
        _release_port(paths, dev)
        raise


async def _unplug(qmp: QmpSession, dev: str) -> None:
    """`device_del` and wait until the guest has let the device go (`DEVICE_DELETED`)."""
    with qmp.listen("DEVICE_DELETED") as listener:
        await qmp.execute("device_del", {"id": dev})
        try:
            async with asyncio.timeout(UNPLUG_TIMEOUT_S):
                while True:
                    event = await listener.get()
                    data = event.get("data")
                    if isinstance(data, dict) and data.get("device") == dev:
                        return
        except TimeoutError as exc:
            raise HypervisorError(f"the guest did not release {dev} within {UNPLUG_TIMEOUT_S:.0f}s") from exc


async def unplug_disk(paths: RuntimePaths, disk_id: str) -> None:
    dev = cmdline.disk_dev(disk_id)
    async with QmpSession(paths.qmp) as qmp:
        await _unplug(qmp, dev)
        nodes = await qmp.execute("query-named-block-nodes", {"flat": True})
        if any(n.get("node-name") == f"node-{disk_id}" for n in nodes):  # -drive ones go with the device
            await qmp.execute("blockdev-del", {"node-name": f"node-{disk_id}"})
    _release_port(paths, dev)


async def unplug_nic(paths: RuntimePaths, nic_id: str) -> None:
    dev = cmdline.nic_dev(nic_id)
    async with QmpSession(paths.qmp) as qmp:
        await _unplug(qmp, dev)
        await qmp.execute("netdev_del", {"id": f"net-{nic_id}"})
    _release_port(paths, dev)


def with_disk(vm: VirtualMachine, disk: DiskSpec) -> VirtualMachine:
    if any(d.id == disk.id for d in vm.spec.disks):
        raise InvalidArgument("disk.id", f"VM {vm.id} already has a disk {disk.id!r}")
    return dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, disks=(*vm.spec.disks, disk)))


def without_disk(vm: VirtualMachine, disk_id: str) -> VirtualMachine:
    if not any(d.id == disk_id for d in vm.spec.disks):
        raise InvalidArgument("disk_id", f"VM {vm.id} has no disk {disk_id!r}")
    if (boot := common.boot_disk(vm.spec)) is not None and boot.id == disk_id:
        raise InvalidArgument("disk_id", f"disk {disk_id!r} is the boot disk of VM {vm.id}")
    disks = tuple(d for d in vm.spec.disks if d.id != disk_id)
    return dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, disks=disks))


def with_nic(vm: VirtualMachine, nic: NetworkSpec) -> VirtualMachine:
    if any(n.id == nic.id for n in vm.spec.network):
        raise InvalidArgument("nic.id", f"VM {vm.id} already has a NIC {nic.id!r}")
    return dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, network=(*vm.spec.network, nic)))


def without_nic(vm: VirtualMachine, nic_id: str) -> VirtualMachine:
    if not any(n.id == nic_id for n in vm.spec.network):
        raise InvalidArgument("nic_id", f"VM {vm.id} has no NIC {nic_id!r}")
    network = tuple(n for n in vm.spec.network if n.id != nic_id)
    return dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, network=network))

