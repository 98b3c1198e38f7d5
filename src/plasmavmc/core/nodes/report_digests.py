"""`ReportDigests`: this replica's copy of each node's VM-report digest, for delta heartbeats.

A delta heartbeat (`agent/heartbeats.py`) names the reports that changed and the VMs gone, with the
digest and count of the node's whole list. This replica applies the changes to its copy of that node's
digest (`wire/report_digest.NodeDigest`: one hash per changed VM) and compares: a match means it has
seen every report the agent holds; a mismatch (or no copy: this replica restarted, or the node
heartbeated to another one) answers `resync`, and the agent sends a full list at once. A full
heartbeat replaces the copy. The copy is memory only, one small integer per VM.
"""

from __future__ import annotations

from collections.abc import Iterable

from plasmavmc.wire.report_digest import NodeDigest, entry


class ReportDigests:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeDigest] = {}

    def full(self, node_id: str, reports: Iterable[tuple[str, bytes]]) -> None:
        """A full heartbeat: the node's reports are exactly these."""
        digest = NodeDigest()
        for vm_id, report in reports:
            digest.set(vm_id, entry(vm_id, report))
        self._nodes[node_id] = digest

    def delta(
        self, node_id: str, changed: Iterable[tuple[str, bytes]], gone: Iterable[str], digest: int, count: int
    ) -> bool:
        """Apply a delta; False (resync needed, and the copy is dropped) unless the result matches."""
        mine = self._nodes.get(node_id)
        if mine is None:
            return False
        for vm_id, report in changed:
            mine.set(vm_id, entry(vm_id, report))
        for vm_id in gone:
            mine.remove(vm_id)
        if mine.digest != digest or len(mine) != count:
            del self._nodes[node_id]
            return False
        return True

    def forget(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)
