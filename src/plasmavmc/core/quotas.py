"""Quotas per org and per project (spec §7.3): limits set by an admin, usage counted transactionally.

Usage changes ride in the SAME store commit as the change that causes them: `commit_charged` adds the
quota records of the VM's org and project (compare-and-swap on each) to the caller's writes, checking
the limits first; a VM create therefore either commits together with its usage or not at all, and N
concurrent creates against a quota of K yield exactly min(N, K) VMs — on any number of servers,
because the quota records' revisions fence them. Within one process a lock per org queues its quota
writes, so they do not spin on each other's compare-and-swap, and charges that arrive together share
one commit (the group commit below).

Every quota commit of this process remembers the records it wrote (`remembered`): the batcher's, and
one charge's alike (a delete's release), so a create after a delete normally costs one commit and no
reads too. The memory is only a guess at the current revision — a stale one loses its compare-and-swap
and the batch re-reads — and `set_limits` forgets it.

A scope's record is created on first use (usage counted from then on, with no limits); `set_limits`
replaces the limits and leaves the usage alone. Lowering a limit below the usage blocks new creates
and removes nothing.

Group commit of charges: the creates of one org that arrive together share ONE store commit.

Every create must write its org's quota record (usage), so within an org creates are serial; one
commit each would cap an org at the store's commit rate divided by the reads around it. Instead,
charges queue per org and a single drainer takes what has queued (up to `MAX_WRITES` writes), takes
the org's and the projects' records as it last committed them (`remembered`; read when it
does not know them), admits the charges in arrival order while they fit (a charge that would cross
a limit gets QUOTA_EXCEEDED, the ones after it still get their turn), and commits the admitted
charges' own writes with the updated quota records, all or none. Remembered records may be stale
(another server wrote since), so a lost compare-and-swap, or a charge that would not fit, is decided
again against fresh reads; if the commit loses even then (a name claimed twice), every charge is
retried on its own (`commit_locked`), so the outcome is exactly what one commit per charge
would give. A charge whose keys collide with one already in the batch waits for its own commit.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from plasmavmc import validation
from plasmavmc.errors import Conflict, InvalidArgument, QuotaExceeded
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.store.cas import attempts, backoff
from plasmavmc.store.records import Versioned, read, replace
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
    """One attempt; `read_at` receives the quota records' revisions it read (to tell whose CAS lost).
    The records it committed are remembered (the next charge of the org needs no read)."""
    updated: dict[str, Versioned[Quota]] = {}
    for org, project in _scopes(org_id, project_id):
        current = await read_quota(store, org, project)
        read_at.append(current.revision)
        updated[project] = replace(current, value=replace(current.value, usage=(current.value.usage + delta).clamped()))
        if delta.charges and (limit := updated[project].value.exceeded()) is not None:
            raise QuotaExceeded(f"quota of {scope_name(updated[project].value)} exceeded: {limit}",
                                field=limit.split()[0])
    quota_writes = [Write(q.key, codec.dumps(q.value), q.revision) for q in updated.values()]
    revision = await store.commit([*writes, *quota_writes])
    known = remembered(store, org_id)
    for project, q in updated.items():
        known[project] = replace(q, revision=revision)
    return revision


async def commit_locked(store: Store, org_id: str, project_id: str, delta: QuotaUsage, writes: Sequence[Write]) -> int:
    """`commit_charged` for a caller that holds `org_lock`: one charge, one commit, retried while
    only the quota records lost their compare-and-swap."""
    forget(store, org_id)  # what it commits is remembered again
    for attempt in attempts(f"quota of {org_id}/{project_id}", MAX_ROUNDS):
        read_at: list[int] = []
        try:
            return await _commit_once(store, org_id, project_id, delta, writes, read_at)
        except Conflict:
            now = [(await read_quota(store, o, p)).revision for o, p in _scopes(org_id, project_id)]
            if now == read_at:
                raise  # the caller's writes lost, not the quota records
            await backoff(attempt)
    raise AssertionError("unreachable: attempts() raises when exhausted")


async def commit_charged(store: Store, org_id: str, project_id: str, delta: QuotaUsage, writes: Sequence[Write]) -> int:
    """Commit `writes` together with `delta` on the org's and the project's usage; returns the revision.

    A positive delta is checked against the limits first (QUOTA_EXCEEDED names the limit); charges that
    arrive together share one commit (the group commit below). A conflict on the quota records is retried
    here; one on the caller's own writes propagates as CONFLICT.
    """
    if delta.charges:
        return await _submit(store, org_id, project_id, delta, writes)
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
        for attempt in attempts(f"quota of {org_id}/{project_id}", MAX_ROUNDS):
            current = await read_quota(store, org_id, project_id)
            updated = replace(current.value, limits=limits)
            try:
                await store.put(key, codec.dumps(updated), expected_revision=current.revision)
            except Conflict:
                await backoff(attempt)
                continue
            return updated
    raise AssertionError("unreachable: attempts() raises when exhausted")


# Group commit of quota charges

MAX_WRITES = 96  # etcd refuses transactions of more than 128 operations by default


@dataclass
class _Charge:
    project_id: str
    delta: QuotaUsage
    writes: Sequence[Write]
    done: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class _OrgQueue:
    waiting: list[_Charge] = field(default_factory=list)
    drainer: asyncio.Task[None] | None = None


_queues: weakref.WeakKeyDictionary[Store, dict[str, _OrgQueue]] = weakref.WeakKeyDictionary()


async def _submit(store: Store, org_id: str, project_id: str, delta: QuotaUsage, writes: Sequence[Write]) -> int:
    """`commit_charged` for a charge: the same result, in a shared commit when others wait too."""
    queue = _queues.setdefault(store, {}).setdefault(org_id, _OrgQueue())
    charge = _Charge(project_id, delta, writes)
    queue.waiting.append(charge)
    if queue.drainer is None or queue.drainer.done():
        queue.drainer = asyncio.create_task(_drain(store, org_id, queue), name=f"quota-batch-{org_id}")
    return await charge.done


async def _drain(store: Store, org_id: str, queue: _OrgQueue) -> None:
    while queue.waiting:
        batch: list[_Charge] = []
        budget = MAX_WRITES
        while queue.waiting and (not batch or len(queue.waiting[0].writes) + 2 <= budget):
            charge = queue.waiting.pop(0)
            budget -= len(charge.writes) + 1
            batch.append(charge)
        async with org_lock(store, org_id):
            try:
                await _commit_batch(store, org_id, [c for c in batch if not c.done.cancelled()])
            except Exception as exc:  # never leave a caller waiting forever
                for c in batch:
                    if not c.done.done():
                        c.done.set_exception(exc)


async def _commit_batch(store: Store, org_id: str, batch: list[_Charge]) -> None:
    """Admit and commit the batch against the remembered quota records. Those may be stale (another
    server wrote since): a lost commit, or a charge that would not fit, is decided again against
    fresh reads; a commit that loses even then falls back to one commit per charge."""
    for fresh in (False, True):
        if fresh:
            forget(store, org_id)
        records = await _records(store, org_id, {c.project_id for c in batch})
        usage = {p: r.value for p, r in records.items()}
        verdict = _admit([c for c in batch if not c.done.done()], usage, final=fresh)
        if verdict is None:
            continue
        admitted, later = verdict
        try:
            if admitted:
                await _commit_admitted(store, org_id, admitted, records, usage)
        except Conflict:
            continue
        for c in later:
            await _one(store, org_id, c)
        return
    for c in batch:  # someone lost a race: give every charge the answer it would get alone
        if not c.done.done():
            await _one(store, org_id, c)


async def _records(store: Store, org_id: str, projects: set[str]) -> dict[str, Versioned[Quota]]:
    known = remembered(store, org_id)
    for project in sorted(projects | {""}):
        if project not in known:
            known[project] = await read_quota(store, org_id, project)
    return {p: known[p] for p in projects | {""}}


def _admit(
    batch: list[_Charge], usage: dict[str, Quota], *, final: bool
) -> tuple[list[_Charge], list[_Charge]] | None:
    """The charges admitted in arrival order while they fit (`usage` is updated with them), and those
    whose keys collide with an admitted one (for later). A charge that does not fit gets
    QUOTA_EXCEEDED when the verdict is `final`; otherwise the answer is None (decide again, fresh)."""
    admitted: list[_Charge] = []
    later: list[_Charge] = []
    keys_taken: set[str] = set()
    for c in batch:
        if keys_taken & {w.key for w in c.writes}:
            later.append(c)
            continue
        org = _charged(usage[""], c.delta)
        project = _charged(usage[c.project_id], c.delta) if c.project_id else org  # "": org-wide
        if (limit := project.exceeded() or org.exceeded()) is not None:
            if not final:
                return None
            scope = project if project.exceeded() else org
            c.done.set_exception(
                QuotaExceeded(f"quota of {scope_name(scope)} exceeded: {limit}", field=limit.split()[0])
            )
            continue
        usage[c.project_id], usage[""] = project, org
        keys_taken |= {w.key for w in c.writes}
        admitted.append(c)
    return admitted, later


def _charged(quota: Quota, delta: QuotaUsage) -> Quota:
    return replace(quota, usage=(quota.usage + delta).clamped())


async def _commit_admitted(
    store: Store, org_id: str, admitted: list[_Charge], records: dict[str, Versioned[Quota]], usage: dict[str, Quota]
) -> None:
    """One commit of the admitted charges' writes and the quota records they charged (raises Conflict
    and answers no one if it lost); the committed records are remembered."""
    touched = sorted({""} | {c.project_id for c in admitted})
    quota_writes = [Write(records[p].key, codec.dumps(usage[p]), records[p].revision) for p in touched]
    revision = await store.commit([*(w for c in admitted for w in c.writes), *quota_writes])
    known = remembered(store, org_id)
    for p in touched:
        known[p] = Versioned(usage[p], revision, records[p].key)
    for c in admitted:
        if not c.done.done():
            c.done.set_result(revision)


async def _one(store: Store, org_id: str, c: _Charge) -> None:
    try:
        c.done.set_result(await commit_locked(store, org_id, c.project_id, c.delta, c.writes))
    except Exception as exc:
        if not c.done.done():
            c.done.set_exception(exc)
