"""The digest of a node's VM reports, computed the same way by the agent and the control plane.

A delta heartbeat (`agent.proto` HeartbeatRequest) carries only the VM reports that changed, plus a
digest of the whole list: the XOR over the node's VMs of the first 8 bytes (big-endian) of
BLAKE2b(vm_id, 0x00, the deterministic wire form of its VmReport). XOR makes it incremental: setting,
replacing or removing one VM's entry costs one hash, whatever the node holds. Equal digests and counts
mean (up to a 2^-64 chance) that both sides hold the same reports.
"""

from __future__ import annotations

import hashlib

from google.protobuf.message import Message


def report_bytes(status: Message) -> bytes:
    """The deterministic wire form of a message (a VmReport: what the digest hashes; a VmStatus: what
    the report memory compares)."""
    return status.SerializeToString(deterministic=True)


def entry(vm_id: str, report: bytes) -> int:
    h = hashlib.blake2b(vm_id.encode(), digest_size=8)
    h.update(b"\0")
    h.update(report)
    return int.from_bytes(h.digest(), "big")


class NodeDigest:
    """vm id -> its entry, and their XOR, kept as entries are set and removed."""

    def __init__(self) -> None:
        self.entries: dict[str, int] = {}
        self.digest = 0

    def set(self, vm_id: str, value: int) -> None:
        self.remove(vm_id)
        self.entries[vm_id] = value
        self.digest ^= value

    def remove(self, vm_id: str) -> None:
        old = self.entries.pop(vm_id, None)
        if old is not None:
            self.digest ^= old

    def __len__(self) -> int:
        return len(self.entries)
