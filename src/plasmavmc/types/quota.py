"""Quotas (spec §7.3): limits and counted usage of one scope, an org or a project.

Field names match `plasmavmc/v1/quota.proto`. Memory usage is counted in MiB (what VMs ask for) and
compared with `max_memory_gib` * 1024; a limit of None means unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceLimits:
    max_vms: int | None = None
    max_vcpus: int | None = None
    max_memory_gib: int | None = None
    max_storage_gib: int | None = None
    max_images: int | None = None
    max_networks: int | None = None


@dataclass(frozen=True)
class QuotaUsage:
    vms: int = 0
    vcpus: int = 0
    memory_mib: int = 0
    storage_gib: int = 0
    images: int = 0
    networks: int = 0

    def _values(self) -> tuple[int, ...]:
        return (self.vms, self.vcpus, self.memory_mib, self.storage_gib, self.images, self.networks)

    def __add__(self, other: QuotaUsage) -> QuotaUsage:
        return QuotaUsage(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    @property
    def charges(self) -> bool:
        """Whether this change takes anything (then it is checked against the limits first)."""
        return any(v > 0 for v in self._values())

    def __neg__(self) -> QuotaUsage:
        return QuotaUsage(*(-v for v in self._values()))

    def clamped(self) -> QuotaUsage:
        """Never below zero (records made before usage was counted release more than they charged)."""
        return QuotaUsage(*(max(0, v) for v in self._values()))


@dataclass(frozen=True)
class Quota:
    org_id: str
    project_id: str = ""  # "" : the whole org
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    usage: QuotaUsage = field(default_factory=QuotaUsage)

    def exceeded(self) -> str | None:
        """The first limit the usage is above, as 'max_vcpus (12 > 10)', or None."""
        lim, use = self.limits, self.usage
        checks = (
            ("max_vms", lim.max_vms, use.vms),
            ("max_vcpus", lim.max_vcpus, use.vcpus),
            ("max_memory_gib", None if lim.max_memory_gib is None else lim.max_memory_gib * 1024, use.memory_mib),
            ("max_storage_gib", lim.max_storage_gib, use.storage_gib),
            ("max_images", lim.max_images, use.images),
            ("max_networks", lim.max_networks, use.networks),
        )
        for name, limit, used in checks:
            if limit is not None and used > limit:
                unit = " MiB" if name == "max_memory_gib" else ""
                return f"{name} ({used}{unit} > {limit}{unit})"
        return None
