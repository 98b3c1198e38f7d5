"""Quotas per org and per project (spec §7.3): limits set by an admin, usage counted transactionally.

Usage changes ride in the SAME store commit as the change that causes them: `commit_charged` adds the
quota records of the VM's org and project (compare-and-swap on each) to the caller's writes, checking
the limits first; a VM create therefore either commits together with its usage or not at all, and N
concurrent creates against a quota of K yield exactly min(N, K) VMs — on any number of servers,
because the quota records' revisions fence them. Within one process a lock per org queues its quota
writes, so they do not spin on each other's compare-and-swap, and charges that arrive together share
one commit (`quota_batch.py`).

The batcher remembers the quota records it last committed (`remembered`), so a batch normally costs
one commit and no reads; the memory is only a guess at the current revision — a stale one loses its
compare-and-swap and the batch re-reads — and is forgotten by every other quota write of this process.

A scope's record is created on first use (usage counted from then on, with no limits); `set_limits`
replaces the limits and leaves the usage alone. Lowering a limit below the usage blocks new creates
and removes nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

from plasmavmc import validation
from plasmavmc.core.records import Versioned, read, replace
from plasmavmc.errors import Conflict, InvalidArgument, QuotaExceeded
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.types import codec
from plasmavmc.types.quota import Quota, QuotaUsage, ResourceLimits
from plasmavmc.types.vm import VirtualMachine

MAX_ROUNDS = 50

_locks: weakref.WeakKeyDictionary[Store, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()
_known: weakref.WeakKeyDictionary[Store, dict[str, dict[str, Versioned[Quota]]]] = weakref.WeakKeyDictionary()


def usage_of(vm: VirtualMachine) -> QuotaUsage:
    return QuotaUsage(
        vms=1,
        vcpus=vm.spec.cpu.vcpus,
        memory_mib=vm.spec.memory.size_mib,
        storage_gib=sum(d.size_gib for d in vm.spec.disks),
    )


def _scopes(org_id: str, project_id: str) -> list[tuple[str, str]]:
    """The records a change is counted in: the org's, and the project's unless it is org-wide ("")."""
    return [(org_id, ""), (org_id, project_id)] if project_id else [(org_id, "")]


async def read_quota(store: Store, org_id: str, project_id: str) -> Versioned[Quota]:
    """The scope's record with its revision (revision 0 and no limits when none was written yet)."""
    key = keys.quota(org_id, project_id)
    found = await read(store, Quota, key)
    return found or Versioned(Quota(org_id=org_id, project_id=project_id), 0, key)


def remembered(store: Store, org_id: str) -> dict[str, Versioned[Quota]]:
    """The org's quota records as this process last committed them, by project ("" is the org);
    the caller holds `org_lock` and may update the dict after a successful commit."""
    return _known.setdefault(store, {}).setdefault(org_id, {})


def forget(store: Store, org_id: str) -> None:
    """Drop what `remembered` holds for the org (after a lost compare-and-swap, or another write)."""
    _known.get(store, {}).pop(org_id, None)


def org_lock(store: Store, org_id: str) -> asyncio.Lock:
    """Serialises this process's quota writes of one org (its projects included)."""
    return _locks.setdefault(store, {}).setdefault(org_id, asyncio.Lock())


def scope_name(quota: Quota) -> str:
    return f"project {quota.org_id}/{quota.project_id}" if quota.project_id else f"org {quota.org_id}"


async def _commit_once(
    store: Store, org_id: str, project_id: str, delta: QuotaUsage, writes: Sequence[Write], read_at: list[int]
) -> int:
    """One attempt; `read_at` receives the quota records' revisions it read (to tell whose CAS lost)."""
    quota_writes = []
    for org, project in _scopes(org_id, project_id):
        current = await read_quota(store, org, project)
        read_at.append(current.revision)
        updated = replace(current.value, usage=(current.value.usage + delta).clamped())
        if delta.charges and (limit := updated.exceeded()) is not None:
            raise QuotaExceeded(f"quota of {scope_name(updated)} exceeded: {limit}", field=limit.split()[0])
        quota_writes.append(Write(current.key, codec.dumps(updated), current.revision))
    return await store.commit([*writes, *quota_writes])


async def commit_locked(store: Store, org_id: str, project_id: str, delta: QuotaUsage, writes: Sequence[Write]) -> int:
    """`commit_charged` for a caller that holds `org_lock`: one charge, one commit, retried while
    only the quota records lost their compare-and-swap."""
    forget(store, org_id)
    for _ in range(MAX_ROUNDS):
        read_at: list[int] = []
        try:
            return await _commit_once(store, org_id, project_id, delta, writes, read_at)
        except Conflict:
            now = [(await read_quota(store, o, p)).revision for o, p in _scopes(org_id, project_id)]
            if now == read_at:
                raise  # the caller's writes lost, not the quota records
    raise Conflict(f"quota of {org_id}/{project_id}: too many concurrent updates, try again")


async def commit_charged(store: Store, org_id: str, project_id: str, delta: QuotaUsage, writes: Sequence[Write]) -> int:
    """Commit `writes` together with `delta` on the org's and the project's usage; returns the revision.

    A positive delta is checked against the limits first (QUOTA_EXCEEDED names the limit); charges that
    arrive together share one commit (`quota_batch.py`). A conflict on the quota records is retried
    here; one on the caller's own writes propagates as CONFLICT.
    """
    if delta.charges:
        from plasmavmc.core import quota_batch  # it builds on this module

        return await quota_batch.submit(store, org_id, project_id, delta, writes)
    async with org_lock(store, org_id):
        return await commit_locked(store, org_id, project_id, delta, writes)


def _check_scope(org_id: str, project_id: str) -> None:
    validation.name(org_id, "org_id")
    if project_id:
        validation.name(project_id, "project_id")


async def get(store: Store, org_id: str, project_id: str) -> Quota:
    _check_scope(org_id, project_id)
    return (await read_quota(store, org_id, project_id)).value


def _check_limits(limits: ResourceLimits) -> None:
    for name, value in limits.__dict__.items():
        if value is not None and not 0 <= value <= 2**31:
            raise InvalidArgument(f"limits.{name}", "must be between 0 and 2^31")


async def set_limits(store: Store, org_id: str, project_id: str, limits: ResourceLimits) -> Quota:
    _check_scope(org_id, project_id)
    _check_limits(limits)
    key = keys.quota(org_id, project_id)
    async with org_lock(store, org_id):
        forget(store, org_id)
        for _ in range(MAX_ROUNDS):
            current = await read_quota(store, org_id, project_id)
            updated = replace(current.value, limits=limits)
            try:
                await store.put(key, codec.dumps(updated), expected_revision=current.revision)
            except Conflict:
                continue
            return updated
    raise Conflict(f"quota of {org_id}/{project_id}: too many concurrent updates, try again")
