"""`VmReads`: GetVm by id or by name from this replica's watched copies of the VM records and the VM
name index (`store/watched.py`), so a read makes no store call and renders nothing.

The copy keeps each VM as its serialized `VirtualMachine` message (what the API answers, user-data left
out), rendered once per change as the watch delivers it; the stored record is dropped then (the message
is a seventh of its size). An entry that could not be rendered (a corrupt record) keeps its value.

Read-your-writes: before answering, a lookup waits (at most `FENCE_TIMEOUT`) until the copies hold every
write this process made to VM records and names (the store's `fence`), so a caller reads what it wrote
through this replica. Writes through another replica appear once the watch delivers them. When the
copies cannot answer — not yet listed, re-listing after a watch failure, or still behind after the
timeout — `find` returns None and the caller reads the store as before.
"""

from __future__ import annotations

import asyncio
import contextlib

from plasmavmc import validation
from plasmavmc.errors import vm_not_found
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue, Store
from plasmavmc.store.records import CorruptRecord, decode
from plasmavmc.store.watched import Entry, WatchedPrefix
from plasmavmc.types.vm import VirtualMachine, without_secrets
from plasmavmc.v1 import types_pb2
from plasmavmc.wire.convert import to_proto

FENCE_TIMEOUT = 2.0  # seconds a read waits for the watch to deliver this process's own writes
VM_NAMES = keys.NAMES + "vm/"


def message(vm: VirtualMachine) -> types_pb2.VirtualMachine:
    """Every VM the API returns goes through here: the user-data secret is never sent back."""
    return to_proto(without_secrets(vm), types_pb2.VirtualMachine())


def rendered(key: str, entry: Entry) -> bytes:
    """The watched record as a serialized VirtualMachine message (rendered now if it was not yet); the
    stored bytes are dropped once it is. CorruptRecord for a record that does not decode."""
    if entry.memo is None:
        vm = decode(VirtualMachine, KeyValue(key, entry.value, 0, entry.revision)).value
        entry.memo, entry.value = message(vm).SerializeToString(), b""
    assert isinstance(entry.memo, bytes)
    return entry.memo


def _render(key: str, entry: Entry) -> None:
    with contextlib.suppress(CorruptRecord):  # reported and counted by decode; a read of it fails as a
        rendered(key, entry)  # store read would


class VmReads:
    def __init__(self, store: Store, retry: float = 1.0) -> None:
        self.records = WatchedPrefix(store, keys.VMS, retry, derive=_render, ordered=True)
        self.names = WatchedPrefix(store, VM_NAMES, retry)

    async def run(self) -> None:
        """Keep both copies current until cancelled."""
        await asyncio.gather(self.records.run(), self.names.run())

    async def listed(self, timeout: float) -> bool:
        """Until both copies are listed (False if they are not after `timeout` seconds each)."""
        return await self.records.seen(0, timeout) and await self.names.seen(0, timeout)

    async def page(self, prefix: str, start_after: str | None, limit: int
                   ) -> tuple[list[tuple[str, Entry]], str | None] | None:
        """Up to `limit` VM records under `prefix` after the key `start_after`, in key order, and the key
        to start the next page after (None when there is no more); None when the copy cannot answer (read
        the store instead). Waits for this process's own writes as `find` does."""
        if not await self.records.caught_up(FENCE_TIMEOUT):
            return None
        found = self.records.keys_after(prefix, start_after or "", limit + 1)
        more = len(found) > limit
        del found[limit:]
        return [(key, self.records.entries[key]) for key in found], found[-1] if more else None

    def name_taken(self, org_id: str, project_id: str, name: str) -> bool | None:
        """Whether a VM of the project has `name`, from the name index when it holds every write of this
        process already (no wait); None when it does not (read the store instead)."""
        if not self.names.covers_own_writes():
            return None
        return self.names.get(keys.vm_name(org_id, project_id, name)) is not None

    async def find(self, org_id: str, project_id: str, vm: str) -> tuple[str, Entry] | None:
        """The record key and watched entry of the VM `vm` (an id or a name) of the project; VM_NOT_FOUND
        when it does not exist; None when the copies cannot answer (read the store instead)."""
        validation.name(org_id, "vm.org_id")
        validation.name(project_id, "vm.project_id")
        vm_id = vm
        if not validation.is_uuid(vm):
            validation.name(vm, "vm.vm_id")  # a VM name in the project (`validation.vm_ref`)
            if not (self.names.covers_own_writes() or await self.names.caught_up(FENCE_TIMEOUT)):
                return None
            claim = self.names.get(keys.vm_name(org_id, project_id, vm))
            if claim is None:
                raise vm_not_found(org_id, project_id, vm)
            vm_id = claim.value.decode()
        if not (self.records.covers_own_writes() or await self.records.caught_up(FENCE_TIMEOUT)):
            return None
        key = keys.vm(org_id, project_id, vm_id)
        entry = self.records.get(key)
        if entry is None:
            raise vm_not_found(org_id, project_id, vm)
        return key, entry
