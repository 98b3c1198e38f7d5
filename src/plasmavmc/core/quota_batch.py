"""Group commit of quota charges: the creates of one org that arrive together share ONE store commit.

Every create must write its org's quota record (usage), so within an org creates are serial; one
commit each would cap an org at the store's commit rate divided by the reads around it. Instead,
charges queue per org and a single drainer takes what has queued (up to `MAX_WRITES` writes), takes
the org's and the projects' records as it last committed them (`quotas.remembered`; read when it
does not know them), admits the charges in arrival order while they fit (a charge that would cross
a limit gets QUOTA_EXCEEDED, the ones after it still get their turn), and commits the admitted
charges' own writes with the updated quota records, all or none. Remembered records may be stale
(another server wrote since), so a lost compare-and-swap, or a charge that would not fit, is decided
again against fresh reads; if the commit loses even then (a name claimed twice), every charge is
retried on its own (`quotas.commit_locked`), so the outcome is exactly what one commit per charge
would give. A charge whose keys collide with one already in the batch waits for its own commit.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from plasmavmc.core import quotas
from plasmavmc.core.records import Versioned, replace
from plasmavmc.errors import Conflict, QuotaExceeded
from plasmavmc.store.base import Store, Write
from plasmavmc.types import codec
from plasmavmc.types.quota import Quota, QuotaUsage

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


async def submit(store: Store, org_id: str, project_id: str, delta: QuotaUsage, writes: Sequence[Write]) -> int:
    """`quotas.commit_charged` for a charge: the same result, in a shared commit when others wait too."""
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
        async with quotas.org_lock(store, org_id):
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
            quotas.forget(store, org_id)
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
    known = quotas.remembered(store, org_id)
    for project in sorted(projects | {""}):
        if project not in known:
            known[project] = await quotas.read_quota(store, org_id, project)
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
                QuotaExceeded(f"quota of {quotas.scope_name(scope)} exceeded: {limit}", field=limit.split()[0])
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
    known = quotas.remembered(store, org_id)
    for p in touched:
        known[p] = Versioned(usage[p], revision, records[p].key)
    for c in admitted:
        if not c.done.done():
            c.done.set_result(revision)


async def _one(store: Store, org_id: str, c: _Charge) -> None:
    try:
        c.done.set_result(await quotas.commit_locked(store, org_id, c.project_id, c.delta, c.writes))
    except Exception as exc:
        if not c.done.done():
            c.done.set_exception(exc)
