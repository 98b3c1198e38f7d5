"""ListVms: one page of a project's (or an org's) VMs, seeking to its page token, with server-side filters.

An unfiltered page comes from this replica's watched copy (`reads.py`: the keys in order, each VM kept
serialized) when it holds this process's own writes, and is then made of kept bytes only; otherwise it
is one store range read from its token (the store seeks there), rendered. Either way a page costs the
same at any depth. With filters (state, node, labels), a page reads the store in steps of the page size until it has
`page_size` matches or has read `MAX_SCANNED` records; it may then hold fewer VMs than asked — even
none — while `next_page_token` is set: the caller follows the token until it is empty. So a filtered
page costs a bounded amount whatever the fleet size and the filter's selectivity.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from plasmavmc import validation
from plasmavmc.core.context import Core
from plasmavmc.core.vms.reads import message, rendered
from plasmavmc.errors import InvalidArgument
from plasmavmc.limits import MAX_LABELS
from plasmavmc.observe.metrics import VM_READS
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue
from plasmavmc.store.records import CorruptRecord, decode, decode_all
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine
from plasmavmc.v1 import types_pb2
from plasmavmc.wire.convert import enum_to_proto

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_SCANNED = 1000  # records one filtered page reads at most
FILTER_STEP = 100  # records read (and decoded) per store call while filtering
MAX_FILTER_VALUES = 100  # node ids (or states) one filter may name
RENDER_SLICE = 25  # records a page read from the store renders between yields to the event loop


@dataclass(frozen=True)
class VmFilter:
    """Every given part must hold: the state is one of `states`, the node one of `node_ids`, and every
    label of `labels` is set to that value. Empty parts do not filter."""

    states: frozenset[VmState] = frozenset()
    node_ids: frozenset[str] = frozenset()
    labels: dict[str, str] = field(default_factory=dict)

    def validated(self) -> VmFilter:
        if len(self.states) > MAX_FILTER_VALUES:
            raise InvalidArgument("states", f"at most {MAX_FILTER_VALUES} values")
        if len(self.node_ids) > MAX_FILTER_VALUES:
            raise InvalidArgument("node_ids", f"at most {MAX_FILTER_VALUES} values")
        for node_id in sorted(self.node_ids):
            validation.name(node_id, "node_ids")
        if len(self.labels) > MAX_LABELS:
            raise InvalidArgument("labels", f"at most {MAX_LABELS} entries")
        validation.labels(self.labels, "labels")
        return self

    @property
    def empty(self) -> bool:
        return not (self.states or self.node_ids or self.labels)

    def matches(self, vm: VirtualMachine) -> bool:
        if self.states and vm.state not in self.states:
            return False
        if self.node_ids and vm.node_id not in self.node_ids:
            return False
        return all(vm.labels.get(k) == v for k, v in self.labels.items())

    def matches_message(self, vm: types_pb2.VirtualMachine, states: frozenset[int]) -> bool:
        """`matches` for a VM as its message; `states`: this filter's states as their wire numbers."""
        if states and vm.state not in states:
            return False
        if self.node_ids and (vm.node_id if vm.HasField("node_id") else None) not in self.node_ids:
            return False
        return all(vm.labels.get(k) == v for k, v in self.labels.items())


def _check(org_id: str, project_id: str, page_size: int, token: str, all_projects: bool) -> None:
    validation.name(org_id, "org_id")
    if all_projects and project_id:
        raise InvalidArgument("project_id", "must be empty with all_projects")
    if not all_projects:
        validation.name(project_id, "project_id")
    if page_size > MAX_PAGE:
        raise InvalidArgument("page_size", f"at most {MAX_PAGE}")
    if token:
        project, _, vm_id = token.rpartition("/") if all_projects else ("", "", token)
        if all_projects:
            validation.name(project, "page_token")
        validation.vm_id(vm_id, "page_token")


async def list_page(
    core: Core, org_id: str, project_id: str, page_size: int, token: str, all_projects: bool = False
) -> tuple[list[bytes], str]:
    """One unfiltered page as serialized VirtualMachine messages, and the next page's token."""
    _check(org_id, project_id, page_size, token, all_projects)
    prefix = keys.vms_in(org_id, None if all_projects else project_id)
    start, limit = prefix + token if token else None, page_size or DEFAULT_PAGE
    kept = await core.vm_reads.page(prefix, start, limit) if core.vm_reads else None
    VM_READS.labels("store" if kept is None else "cache").inc()
    if kept is not None:
        found, after = kept
        out = []
        for key, entry in found:
            with contextlib.suppress(CorruptRecord):  # reported and counted by decode; left out
                out.append(rendered(key, entry))
    else:
        page = await core.store.list(prefix, start_after=start, limit=limit)
        out, after = await _render(core, page.items), page.next_start_after
    return out, after.removeprefix(prefix) if after else ""


async def _render(core: Core, items: Sequence[KeyValue]) -> list[bytes]:
    """Records read from the store as serialized messages: what the watched copy rendered when it holds
    the same revision, else rendered now; an unreadable record is left out. Rendering is the cost: other
    calls run between slices of `RENDER_SLICE` records."""
    copy = core.vm_reads.records if core.vm_reads else None
    out = []
    for i, kv in enumerate(items):
        if i and not i % RENDER_SLICE:
            await asyncio.sleep(0)
        entry = copy.get(kv.key) if copy else None
        with contextlib.suppress(CorruptRecord):
            if entry is not None and entry.revision == kv.mod_revision:
                out.append(rendered(kv.key, entry))
            else:
                out.append(message(decode(VirtualMachine, kv).value).SerializeToString())
    return out


# one step of a filtered listing: (key, the serialized VM if it matches else None) per record read, and
# the key to read the next step after (None at the end)
Step = tuple[list[tuple[str, bytes | None]], str | None]


async def list_vms(
    core: Core,
    org_id: str,
    project_id: str,
    page_size: int,
    token: str,
    all_projects: bool = False,
    where: VmFilter | None = None,
) -> tuple[list[bytes], str]:
    """One page of a project's VMs (or, with `all_projects`, of every project of the org) that match
    `where`, as serialized VirtualMachine messages, and the next page's token ("" when done). The records
    come from the watched copy (each kept serialized: matched on its parsed message) when it can answer,
    else from the store (decoded)."""
    _check(org_id, project_id, page_size, token, all_projects)
    where = (where or VmFilter()).validated()
    limit = page_size or DEFAULT_PAGE
    prefix = keys.vms_in(org_id, None if all_projects else project_id)
    start = prefix + token if token else None
    found: list[bytes] = []
    scanned = 0
    while True:
        items, after = await _step(core, prefix, start, max(limit, FILTER_STEP), where)
        for key, raw in items:
            if raw is None:
                continue
            found.append(raw)
            if len(found) == limit:  # full: resume after this VM, unless it was the very last one
                more = key != items[-1][0] or after is not None
                return found, key.removeprefix(prefix) if more else ""
        scanned += len(items)
        if after is None:
            return found, ""
        if scanned >= MAX_SCANNED:
            return found, after.removeprefix(prefix)
        start = after
        await asyncio.sleep(0)  # matching is the cost: let other calls run between steps


async def _step(core: Core, prefix: str, start: str | None, count: int, where: VmFilter) -> Step:
    """`count` records after `start`: from the watched copy when it can answer, else from the store."""
    kept = await core.vm_reads.page(prefix, start, count) if core.vm_reads else None
    VM_READS.labels("store" if kept is None else "cache").inc()
    if kept is None:
        page = await core.store.list(prefix, start_after=start, limit=count)
        decoded = {item.key: item.value for item in decode_all(VirtualMachine, page.items)}
        return [(kv.key, message(vm).SerializeToString() if (vm := decoded.get(kv.key)) is not None
                 and where.matches(vm) else None) for kv in page.items], page.next_start_after
    entries, after = kept
    states = frozenset(enum_to_proto(s, types_pb2.VmState.DESCRIPTOR) for s in where.states)
    out: list[tuple[str, bytes | None]] = []
    for key, entry in entries:
        try:
            raw = rendered(key, entry)
        except CorruptRecord:
            raw = None  # reported and counted by decode; left out
        matched = raw is not None and where.matches_message(types_pb2.VirtualMachine.FromString(raw), states)
        out.append((key, raw if matched else None))
    return out, after
