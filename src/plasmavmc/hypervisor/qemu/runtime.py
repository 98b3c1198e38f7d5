"""The layout of one QEMU VM's runtime directory, and the small files in it that outlive the agent.

`<runtime_dir>/<vm_id>/` (mode 0700) is everything the backend made for a VM; deleting it deletes the
VM's node-local state. Its files:

    handle.json        the VmHandle (written atomically: temp file + rename)
    vm.json            the VirtualMachine as created (spec needed to build argv at every start)
    images.json        the LocalImages the disks were made from (kernel/initrd/cmdline for direct boot)
    disk-<id>.qcow2    one overlay per disk, on the image as its read-only backing file
    qemu.pid           written by QEMU (-pidfile)
    qmp.sock           QMP for short operations (connect, execute, disconnect)
    qmp-events.sock    a second QMP monitor, held by the exit watcher for SHUTDOWN events
    console.sock       serial input; console.log: all serial output (see hypervisor/console.py)
    vnc.sock           the VNC (RFB) server
    started.json       accelerator and started_at of the current run
    ports.json         q35: which PCIe root port holds which device in the current run (hotplug.py)
    snapshots.json     the snapshots taken (snapshots.py); their data lives inside the qcow2 disks
    stop-requested     intent markers: the agent asked for the exit (stop/kill/reboot/delete) ...
    guest-shutdown     ... or the guest powered itself off (written by the exit watcher)
    guest-panic        ... or it panicked

The markers are files, not memory, so that an agent restarted while a VM exits still reports the exit
truthfully. `vm_id` is a UUID (validated here again), so it is safe as a path component.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plasmavmc.hypervisor.common import checked_vm_id, write_atomic

STOP_REQUESTED = "stop-requested"
GUEST_SHUTDOWN = "guest-shutdown"
GUEST_PANIC = "guest-panic"
MARKERS = (STOP_REQUESTED, GUEST_SHUTDOWN, GUEST_PANIC)


@dataclass(frozen=True)
class RuntimePaths:
    root: Path

    @classmethod
    def of(cls, runtime_dir: Path, vm_id: str) -> RuntimePaths:
        return cls(runtime_dir.absolute() / checked_vm_id(vm_id))

    @property
    def handle(self) -> Path:
        return self.root / "handle.json"

    @property
    def vm(self) -> Path:
        return self.root / "vm.json"

    @property
    def images(self) -> Path:
        return self.root / "images.json"

    @property
    def pidfile(self) -> Path:
        return self.root / "qemu.pid"

    @property
    def qmp(self) -> Path:
        return self.root / "qmp.sock"

    @property
    def qmp_events(self) -> Path:
        return self.root / "qmp-events.sock"

    @property
    def console_sock(self) -> Path:
        return self.root / "console.sock"

    @property
    def console_log(self) -> Path:
        return self.root / "console.log"

    @property
    def started(self) -> Path:
        return self.root / "started.json"

    @property
    def vnc_sock(self) -> Path:
        return self.root / "vnc.sock"

    @property
    def ports(self) -> Path:
        return self.root / "ports.json"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots.json"

    def disk(self, disk_id: str) -> Path:
        return self.root / f"disk-{disk_id}.qcow2"

    def marker(self, name: str) -> Path:
        return self.root / name

    def has(self, name: str) -> bool:
        return self.marker(name).exists()

    def set_marker(self, name: str, text: str = "") -> None:
        write_atomic(self.marker(name), text.encode())

    def clear_markers(self) -> None:
        for name in MARKERS:
            self.marker(name).unlink(missing_ok=True)


