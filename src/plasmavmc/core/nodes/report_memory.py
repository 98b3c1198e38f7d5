"""`ReportMemory`: lets a heartbeat skip the VMs whose report changes nothing, without a store read.

Every agent heartbeat carries the observed status of each of its VMs; applying one costs two store reads
(the assignment, the VM record) even when nothing changed, which at 10,000 VMs is thousands of reads a
second. The outcome of applying a report (`reports._refreshed`) depends only on the VM record, the node
that reports, the observed status and whether the report is newer than the record's last change. So
once a report was judged against record revision R (and was not stale), the same report from the same
node changes nothing again as long as the record is still at R: it can be skipped.

Whether the record is still at R is known without reading it: a watch on the VM records (run by every
replica, since every replica serves heartbeats) keeps each VM's latest revision. The watch may lag a
write by a moment; then one identical report is skipped that should have been applied, and the next
heartbeat applies it — the heartbeat is a level-triggered safety net (exits are reported at once by
`ReportStatus`, which never skips). When the watch fails (store error, compacted history), everything
remembered is forgotten and, until the watch is back, nothing is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.base import EventType, Store

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0


def vm_id_of(key: str) -> str:
    """The VM id of a VM record key (`plasmavmc/vms/{org}/{project}/{vm_id}`)."""
    return key.rsplit("/", 1)[-1]


@dataclass
class ReportMemory:
    """The last report applied per VM (node, observed status, record revision it was judged against).

    A report is kept as its deterministic wire form (`VmStatus` message bytes): comparing those lets a
    heartbeat skip an unchanged report without decoding it."""

    _applied: dict[str, tuple[str, bytes, int]] = field(default_factory=dict)
    _latest: dict[str, int] = field(default_factory=dict)  # VM id -> newest record revision watched
    _watching: bool = False
    _epoch: int = 0  # bumped whenever the memory is reset: a report read before then is not remembered

    def unchanged(self, vm_id: str, node_id: str, observed: bytes) -> bool:
        """True when this exact report was already applied and the VM record has not changed since."""
        if not self._watching:
            return False
        entry = self._applied.get(vm_id)
        if entry is None:
            return False
        node, status, revision = entry
        return node == node_id and status == observed and self._latest.get(vm_id, 0) <= revision

    def epoch(self) -> int:
        """Take before reading the VM record; pass to `remember`."""
        return self._epoch

    def remember(self, vm_id: str, node_id: str, observed: bytes, revision: int, epoch: int) -> None:
        """Record that `observed` from `node_id` was judged against record revision `revision`, read
        after `epoch` was taken (if the memory was reset since, the watch may have missed a change)."""
        if self._watching and epoch == self._epoch:
            self._applied[vm_id] = (node_id, observed, revision)

    def forget(self, vm_id: str) -> None:
        self._applied.pop(vm_id, None)

    def __len__(self) -> int:
        return len(self._applied)

    async def run(self, store: Store) -> None:
        """Follow the VM records until cancelled, re-watching after any failure."""
        try:
            while True:
                # everything remembered from here on was read at or after `start - 1`, so the watch
                # from `start` sees every later change of those records
                try:
                    start = await store.revision() + 1
                except PlasmaError as err:
                    log.warning("report memory: %s; retrying", err)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                self._reset(watching=True)
                try:
                    async for event in store.watch(keys.VMS, start):
                        vm_id = vm_id_of(event.key)
                        if event.type == EventType.DELETE:
                            self._applied.pop(vm_id, None)
                            self._latest.pop(vm_id, None)
                        else:
                            self._latest[vm_id] = event.revision
                except PlasmaError as err:
                    log.warning("report memory: watch on VM records failed: %s; watching again", err)
                    self._reset(watching=False)
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            self._reset(watching=False)

    def _reset(self, *, watching: bool) -> None:
        self._applied.clear()
        self._latest.clear()
        self._watching = watching
        self._epoch += 1
