"""The layout of one Firecracker VM's runtime directory: what lives where, jailed or not.

`<runtime_dir>/<vm_id>/` (mode 0700) holds the agent's files for the VM:

    handle.json, vm.json, images.json, started.json   as for QEMU (written atomically)
    stop-requested                                    intent marker: "<pid> <reason>"
    console.log       serial output: Firecracker's stdout, appended across runs and restores
    console.in        a FIFO that is Firecracker's stdin (opened read-write by it, so never EOF):
                      serial input, writable by any agent incarnation
    launch.log        stderr of firecracker / the jailer

and the *guest dir*, the directory Firecracker itself sees as its working directory: `<vm dir>/vm`
when unjailed, the jail's chroot `<vm dir>/jail/<exec name>/<jail id>/root` when jailed. The jail id is the VM id,
except for a VM that took a process of the warm pool (`pool.py`): its jail, cgroup and `--id` keep the
pool entry's id, which the handle records (`details["jail_id"]`). Every path given
to Firecracker's API is relative to it, so the same request works inside and outside a jail and a
snapshot taken in one run loads in the next:

    vmlinux, initrd, disk-<id>.raw    the kernel (hard link or copy) and each VM's own raw disk
    vm-config.json                    the VM for Firecracker's `--config-file` (written at each boot)
    firecracker.log, metrics.json     Firecracker's logger and metrics files
    api.sock                          the API socket
    firecracker.pid                   unjailed: written by us; jailed: by the jailer (--new-pid-ns)
    snapshots/<id>/                   vmstate, memory, disk-<id>.raw (complete ones only: renamed
                                      into place from snapshots/.<id>.tmp)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from plasmavmc.errors import InvalidArgument
from plasmavmc.hypervisor.common import checked_vm_id

STOP_REQUESTED = "stop-requested"
SNAPSHOT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
KERNEL = "vmlinux"
INITRD = "initrd"
LOG = "firecracker.log"
METRICS = "metrics.json"
API_SOCK = "api.sock"
PIDFILE = "firecracker.pid"
CONFIG = "vm-config.json"


def checked_snapshot_id(snapshot_id: str) -> str:
    if not SNAPSHOT_ID_RE.fullmatch(snapshot_id):
        raise InvalidArgument("snapshot_id", f"{snapshot_id!r} must match {SNAPSHOT_ID_RE.pattern}")
    return snapshot_id


def disk_file(disk_id: str) -> str:
    """The guest-dir-relative name of a disk; `disk_id` is validated by the caller (spec check)."""
    return f"disk-{disk_id}.raw"


@dataclass(frozen=True)
class FcPaths:
    root: Path
    guest: Path  # the directory Firecracker runs in (see module docstring)
    jailed: bool
    jail_id: str  # Firecracker's `--id` (the pid-reuse marker), its jail's and cgroup's name

    @classmethod
    def of(cls, runtime_dir: Path, vm_id: str, *, jailed: bool, exec_name: str = "firecracker",
           jail_id: str | None = None) -> FcPaths:
        root = runtime_dir.absolute() / checked_vm_id(vm_id)
        jail_id = checked_vm_id(jail_id) if jail_id else vm_id
        guest = root / "jail" / exec_name / jail_id / "root" if jailed else root / "vm"
        return cls(root, guest, jailed, jail_id)

    @property
    def top(self) -> Path:
        """The directory under `root` that holds the guest dir (`jail` or `vm`): what moves with a process."""
        return self.root / ("jail" if self.jailed else "vm")

    @property
    def jail_base(self) -> Path:
        return self.root / "jail"

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
    def started(self) -> Path:
        return self.root / "started.json"

    @property
    def console_log(self) -> Path:
        return self.root / "console.log"

    @property
    def console_in(self) -> Path:
        return self.root / "console.in"

    @property
    def launch_log(self) -> Path:
        return self.root / "launch.log"

    @property
    def stop_marker(self) -> Path:
        return self.root / STOP_REQUESTED

    @property
    def pidfile(self) -> Path:
        return self.guest / PIDFILE

    @property
    def api_sock(self) -> Path:
        return self.guest / API_SOCK

    @property
    def config(self) -> Path:
        return self.guest / CONFIG

    @property
    def log(self) -> Path:
        return self.guest / LOG

    @property
    def metrics(self) -> Path:
        return self.guest / METRICS

    def disk(self, disk_id: str) -> Path:
        return self.guest / disk_file(disk_id)

    def snapshot_dir(self, snapshot_id: str) -> Path:
        return self.guest / "snapshots" / checked_snapshot_id(snapshot_id)
