"""Bounds the VM event history: the leader removes events older than `max_age_seconds` and, per VM,
all but the newest `max_per_vm` (config `[events]`).

Event keys sort by time within a VM (`keys.vm_event`), so one ordered scan of the events prefix finds
both kinds. Removal is a plain delete (the store compacts its own history); a watcher never sees it as
an event (`core/watch.py` skips deletes), and a client resuming from a revision older than what is kept
gets what is left.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write

log = logging.getLogger(__name__)
BATCH = 100  # deletes per commit (etcd refuses transactions of more than 128 operations)


@dataclass(frozen=True)
class Retention:
    max_age_seconds: int = 7 * 24 * 3600
    max_per_vm: int = 200


def _expired(key_stamps: list[str], retention: Retention, now_ns: int) -> list[str]:
    """Of one VM's event keys (in time order), those to remove."""
    cutoff = now_ns - retention.max_age_seconds * 1_000_000_000
    surplus = max(0, len(key_stamps) - retention.max_per_vm)
    out = key_stamps[:surplus]
    for key in key_stamps[surplus:]:
        if int(key.rpartition("/")[2].partition("-")[0]) >= cutoff:
            break
        out.append(key)
    return out


async def compact(store: Store, retention: Retention) -> int:
    """One pass; returns how many events were removed."""
    per_vm: dict[str, list[str]] = defaultdict(list)
    for kv in await store.list_all(keys.EVENTS, page_size=2000):
        per_vm[kv.key.rpartition("/")[0]].append(kv.key)
    now = time.time_ns()
    doomed = [key for vm_keys in per_vm.values() for key in _expired(vm_keys, retention, now)]
    for i in range(0, len(doomed), BATCH):
        await store.commit([Write(key, None) for key in doomed[i:i + BATCH]])
    if doomed:
        log.info("event retention: removed %d events", len(doomed))
    return len(doomed)
