"""What a running VM reports about itself across layers: its snapshots and how its process ended.

Shared by hypervisor backends (which produce them), the agent and core (which pass them on) and the client
(which shows them), so they live here rather than in `hypervisor/`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot as `list_snapshots` reports it (field names match the `VmSnapshot` message)."""

    id: str
    created_at: int
    memory: bool  # RAM and device state saved too, not only disks
    disk_ids: tuple[str, ...] = ()


class ExitKind(StrEnum):
    REQUESTED = "requested"  # stop/kill/delete asked for it
    GUEST_POWEROFF = "guest_poweroff"  # the guest shut itself down
    CRASHED = "crashed"  # killed or died without being asked
    HOST_REBOOT = "host_reboot"  # found gone when the agent started: the host rebooted (or it died unwatched)
