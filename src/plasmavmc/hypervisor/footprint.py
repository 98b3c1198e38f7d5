"""What a hypervisor process costs the host in memory beyond its guest's RAM (the per-VM overhead).

A QEMU or Firecracker process's resident set is the guest RAM the guest has touched plus the VMM's
own cost: QEMU's TCG translation cache, device state, thread stacks, heap, libraries. Only the second
part is overhead; the first is what the VM was sized for. The totals come from
`/proc/<pid>/smaps_rollup` (Rss, Pss); the guest's part from `/proc/<pid>/smaps`: the mapping(s) of
guest RAM, found by size (one mapping of the guest's size, up to `SLACK` larger for guard pages and
alignment; or, as Firecracker maps RAM above and below the 32-bit MMIO gap separately, two mappings
that add up to it). Overhead = total minus the guest part, for Rss and Pss alike. When no guest
mapping is found (an unusual layout) the guest part counts as 0, so the overhead is over-stated, never
hidden.

Reading smaps walks every mapping of the process (a few hundred for QEMU, about a millisecond), so a
`FootprintMeter` keeps each VM's figure for `MAX_AGE_S` and reads it again only after that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

MIB = 2**20
SLACK = 4 * MIB
MAX_AGE_S = 30.0


@dataclass(frozen=True)
class Footprint:
    rss: int = 0  # bytes, the whole process
    pss: int = 0
    guest_rss: int = 0  # bytes of guest RAM resident
    guest_pss: int = 0

    @property
    def overhead_rss_mib(self) -> int:
        return max(self.rss - self.guest_rss, 0) // MIB

    @property
    def overhead_pss_mib(self) -> int:
        return max(self.pss - self.guest_pss, 0) // MIB


@dataclass
class _Mapping:
    size: int
    rss: int = 0
    pss: int = 0


def _kib(line: str) -> int:
    return int(line.split()[1]) * 1024


def rollup(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of `pid` in bytes from smaps_rollup; (0, 0) when it is gone or unreadable."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = _kib(line)
            elif line.startswith("Pss:"):
                pss = _kib(line)
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rss, pss


def mappings(pid: int) -> list[_Mapping]:
    """Every mapping of `pid` with its size, Rss and Pss (bytes); [] when it is gone."""
    found: list[_Mapping] = []
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not head.endswith(":"):
            start, _, end = head.partition("-")
            try:
                found.append(_Mapping(int(end, 16) - int(start, 16)))
            except ValueError:
                continue
        elif found and line.startswith("Rss:"):
            found[-1].rss = _kib(line)
        elif found and line.startswith("Pss:"):
            found[-1].pss = _kib(line)
    return found


def guest_mappings(maps: list[_Mapping], guest_bytes: int) -> list[_Mapping]:
    """The mapping(s) holding guest RAM: one of the guest's size (+ SLACK), else two adding up to it."""
    single = [m for m in maps if guest_bytes <= m.size <= guest_bytes + SLACK]
    if single:
        return [max(single, key=lambda m: m.rss)]
    big = sorted((m for m in maps if m.size < guest_bytes), key=lambda m: -m.size)[:8]
    for i, a in enumerate(big):
        for b in big[i + 1:]:
            if guest_bytes <= a.size + b.size <= guest_bytes + SLACK:
                return [a, b]
    return []


def measure(pid: int, guest_bytes: int) -> Footprint:
    rss, pss = rollup(pid)
    if rss == 0:
        return Footprint()
    guest = guest_mappings(mappings(pid), guest_bytes)
    return Footprint(rss=rss, pss=pss, guest_rss=sum(m.rss for m in guest), guest_pss=sum(m.pss for m in guest))


class FootprintMeter:
    """Each VM's latest `Footprint`, read again once older than `max_age_s` or when the pid changed."""

    def __init__(self, max_age_s: float = MAX_AGE_S) -> None:
        self.max_age_s = max_age_s
        self._last: dict[str, tuple[float, int, Footprint]] = {}  # vm_id -> (monotonic, pid, figure)

    def forget(self, vm_id: str) -> None:
        self._last.pop(vm_id, None)

    def sample(self, vm_id: str, pid: int, guest_mib: int) -> Footprint:
        now = time.monotonic()
        last = self._last.get(vm_id)
        if last is not None and last[1] == pid and now - last[0] < self.max_age_s:
            return last[2]
        figure = measure(pid, guest_mib * MIB)
        self._last[vm_id] = (now, pid, figure)
        return figure


def usage_fields(figure: Footprint) -> dict[str, int]:
    """The `ResourceUsage` fields a footprint fills (every backend reports them the same way)."""
    return {"memory_pss_mib": figure.pss // MIB, "memory_overhead_rss_mib": figure.overhead_rss_mib,
            "memory_overhead_pss_mib": figure.overhead_pss_mib}
