"""How the `plasmavmc` CLI shows records: aligned tables for people; JSON, YAML or bare values for programs.

JSON/YAML are always `plasmavmc.types.codec.to_data` of the domain dataclasses — the same shape the store
and the API use — so scripts never depend on the table layout. `-o value` prints the table's cells
without a header, one row per line, space separated (for `read` and `xargs`). `-c NAME` keeps only the
named columns (table/value: header names, any case; json/yaml: top-level field names). Table rows are
built by one small function per resource; everything else (alignment, ages, sizes, color) is shared
here. Color is used only when stdout is a terminal and `NO_COLOR` is unset (https://no-color.org).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from plasmavmc.types.codec import to_data
from plasmavmc.types.events import VmEvent
from plasmavmc.types.image import Image
from plasmavmc.types.node import Node
from plasmavmc.types.runtime import SnapshotInfo
from plasmavmc.types.vm import VirtualMachine

VM_COLUMNS = ("ID", "NAME", "STATE", "NODE", "HYPERVISOR", "VCPUS", "MEMORY", "AGE")
NODE_COLUMNS = ("ID", "STATE", "VCPUS", "MEMORY", "HYPERVISORS", "ACCEL", "HEARTBEAT")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
IMAGE_COLUMNS = ("ID", "NAME", "FORMAT", "SIZE", "VISIBILITY", "STATUS")
SNAPSHOT_COLUMNS = ("ID", "CREATED", "AGE", "CONTENT", "DISKS")


def to_seconds(stamp: int) -> float:
    """A stored timestamp as Unix seconds, whatever its unit (s, ms, µs or ns: told apart by magnitude)."""
    for limit, scale in ((10**17, 1e9), (10**14, 1e6), (10**11, 1e3)):
        if stamp >= limit:
            return stamp / scale
    return float(stamp)


def age(stamp: int, now: float | None = None) -> str:
    """`42s`, `5m`, `3h`, `2d` since `stamp`; `-` when unset."""
    if not stamp:
        return "-"
    secs = max(0, int((time.time() if now is None else now) - to_seconds(stamp)))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def iso_time(stamp: int) -> str:
    """`2025-01-02T03:04:05Z` (UTC); `-` when unset."""
    if not stamp:
        return "-"
    return datetime.fromtimestamp(to_seconds(stamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_bytes(n: int) -> str:
    """`512B`, `1.5KiB`, `20.0GiB`."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n}B" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def upper(value: Any) -> str:
    return "-" if value is None else str(value.value if hasattr(value, "value") else value).upper()


def printable(text: str) -> str:
    """`text` with control characters (ANSI escapes, newlines, NUL) and bidirectional overrides shown
    escaped (`\\x1b`): a name that came from the store can never drive the reader's terminal."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, painted: bool = False) -> str:
    """Columns left-aligned, two spaces apart, header first; no trailing spaces; cells made `printable`
    unless `painted` (the caller escaped them before adding its own color)."""
    if not painted:
        rows = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(_width(str(cell)) for cell in col) for col in zip(columns, *rows, strict=False)]
    lines = ["  ".join(str(c) + " " * (w - _width(str(c))) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in (columns, *rows)]
    return "\n".join(lines)


def _width(cell: str) -> int:
    """Printed width: color escapes take no room."""
    return len(re.sub(r"\x1b\[[0-9;]*m", "", cell))


def details(pairs: Sequence[tuple[str, str]]) -> str:
    """`KEY:  value` lines, values aligned and `printable`."""
    width = max(len(k) for k, _ in pairs) + 1
    return "\n".join(f"{(k + ':').ljust(width)}  {printable(v)}" for k, v in pairs)


def vm_row(vm: VirtualMachine) -> list[str]:
    return [
        vm.id,
        vm.name,
        upper(vm.state),
        vm.node_id or "-",
        str(vm.hypervisor.value),
        str(vm.spec.cpu.vcpus),
        f"{vm.spec.memory.size_mib}MiB",
        age(vm.created_at),
    ]


def vm_details(vm: VirtualMachine) -> str:
    disks = ", ".join(
        f"{d.id}={d.source.image_id or d.source.volume_id or '-'}:{d.size_gib}GiB" for d in vm.spec.disks
    )
    nics = ", ".join(f"{n.id}={n.network_id}" + (f"@{n.mac_address}" if n.mac_address else "")
                     + (f" ip {n.ip_address}" if n.ip_address else "") for n in vm.spec.network)
    labels = ",".join(f"{k}={v}" for k, v in sorted(vm.labels.items()))
    return details([
        ("ID", vm.id),
        ("Name", vm.name),
        ("Org/Project", f"{vm.org_id}/{vm.project_id}"),
        ("State", upper(vm.state)),
        ("Node", vm.node_id or "-"),
        ("Hypervisor", str(vm.hypervisor.value)),
        ("Accelerator", vm.status.accelerator or "-"),
        ("vCPUs", str(vm.spec.cpu.vcpus)),
        ("Memory", f"{vm.spec.memory.size_mib}MiB"),
        ("Disks", disks or "-"),
        ("NICs", nics or "-"),
        ("IPs", ", ".join(vm.status.ip_addresses) or "-"),
        ("Labels", labels or "-"),
        ("Last error", vm.status.last_error or "-"),
        ("Restart policy", restart_line(vm)),
        ("Created", f"{iso_time(vm.created_at)} ({age(vm.created_at)} ago)" if vm.created_at else "-"),
        ("Last boot", boot_line(vm)),
        ("Conditions", conditions(vm.status.conditions)),
    ])


def restart_line(vm: VirtualMachine) -> str:
    """`on-failure (2 restarts in a row; next in 4s: RestartedAfterCrash)`."""
    st = vm.status
    parts = [f"{st.restarts} restart{'s' if st.restarts != 1 else ''} in a row"] if st.restarts else []
    if st.restart_due_at:
        parts.append(f"next in {max(st.restart_due_at - int(time.time()), 0)}s: {st.restart_reason}")
    return vm.spec.restart_policy.value + (f" ({'; '.join(parts)})" if parts else "")


def conditions(items: Sequence[Any]) -> str:
    """`NodeUnresponsive=True (AgentLost: no heartbeat for 20s, 3m ago)`, one per line; `-` when none."""
    lines = [f"{c.type}={c.status} ({c.reason}{': ' + c.message if c.message else ''}"
             f"{', ' + age(c.last_transition_at) + ' ago' if c.last_transition_at else ''})" for c in items]
    return ("\n" + " " * 13).join(lines) or "-"


def snapshot_row(snap: SnapshotInfo) -> list[str]:
    return [snap.id, iso_time(snap.created_at), age(snap.created_at),
            "memory+disks" if snap.memory else "disks", ",".join(snap.disk_ids) or "-"]


def boot_line(vm: VirtualMachine) -> str:
    """`placed +0.05s, image_ready +0.40s, ..., ready +2.91s (total 3.52s)`: the last start, step by step."""
    steps = vm.status.boot.steps()
    if not steps:
        return "-"
    total = sum(seconds for _, seconds in steps)
    return ", ".join(f"{name} +{seconds:.2f}s" for name, seconds in steps) + f" (total {total:.2f}s)"


def node_row(node: Node) -> list[str]:
    # "allocated/capacity", where capacity is what the scheduler may hand out (allocatable when reported)
    cap = node.allocatable if node.allocatable.vcpus or node.allocatable.memory_mib else node.capacity
    beat = age(node.last_heartbeat)
    return [
        node.id,
        upper(node.state),
        f"{node.allocated.vcpus}/{cap.vcpus}",
        f"{node.allocated.memory_mib}/{cap.memory_mib}MiB",
        ",".join(h.value for h in node.hypervisors) or "-",
        node.accelerator or "-",
        beat if beat == "-" else f"{beat} ago",
    ]


def image_row(image: Image) -> list[str]:
    return [
        image.id,
        image.name,
        str(image.format.value),
        human_bytes(image.size_bytes),
        str(image.visibility.value),
        upper(image.status),
    ]


def event_line(event: VmEvent) -> str:
    """`2025-01-02T03:04:05Z  r1234  state_changed  Started  STARTING -> RUNNING  by alice  vm …` (printable)."""
    if event.vm is not None:  # the INITIAL record
        return printable(f"{iso_time(event.timestamp)}  r{event.revision}  {event.type.value}  {upper(event.state)}")
    who = f"  by {event.actor}" if event.actor else ""
    return printable(f"{iso_time(event.timestamp)}  r{event.revision}  {event.type.value}  {event.reason}  "
                     f"{event.message}{who}  vm {event.vm_id}")


def dump_json(obj: Any, *, compact: bool = False) -> str:
    """One JSON document of a dataclass (or a list of them)."""
    if compact:
        return json.dumps(to_data(obj), separators=(",", ":"))
    return json.dumps(to_data(obj), indent=2)


def emit(text: str) -> None:
    """Print one block to stdout (looked up at call time, so redirection and capture see it)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class ColumnError(ValueError):
    """`-c NAME` names no column of this output."""


def dump_yaml(obj: Any) -> str:
    """One YAML document of a dataclass (or a list of them), keys in field order."""
    return str(yaml.safe_dump(to_data(obj), sort_keys=False, default_flow_style=False)).rstrip("\n")


def _pick_fields(data: Any, names: Sequence[str]) -> Any:
    if isinstance(data, list):
        return [_pick_fields(item, names) for item in data]
    missing = [n for n in names if n not in data]
    if missing:
        raise ColumnError(f"no field {missing[0]!r} (fields: {', '.join(data)})")
    return {n: data[n] for n in names}


def _pick_columns(columns: Sequence[str], rows: Sequence[Sequence[str]],
                  names: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    index = {c.lower(): i for i, c in enumerate(columns)}
    missing = [n for n in names if n.lower() not in index]
    if missing:
        raise ColumnError(f"no column {missing[0]!r} (columns: {', '.join(columns)})")
    picked = [index[n.lower()] for n in names]
    return [columns[i] for i in picked], [[row[i] for i in picked] for row in rows]


def render(fmt: str, names: Sequence[str] | None, obj: Any, columns: Sequence[str],
           rows: Sequence[Sequence[str]]) -> str:
    """`obj` (a record or list) in format `fmt`; `columns`/`rows` are its table form."""
    if fmt in ("json", "yaml"):
        data = to_data(obj)
        if names:
            data = _pick_fields(data, names)
        return json.dumps(data, indent=2) if fmt == "json" else dump_yaml(data)
    cols, cells = _pick_columns(columns, rows, names) if names else (list(columns), [list(r) for r in rows])
    cells = [[printable(str(c)) for c in row] for row in cells]
    if fmt == "value":
        return "\n".join(" ".join(row) for row in cells)
    painted = [[color(c) if h == "STATE" else c for h, c in zip(cols, row, strict=True)] for row in cells]
    return table(cols, painted, painted=True)


def show(args: Any, obj: Any, columns: Sequence[str], row: Callable[[Any], Sequence[str]]) -> int:
    """Print a record or a list of records in the `-o` format with the `-c` columns; returns 0."""
    items = obj if isinstance(obj, list) else [obj]
    text = render(args.output, args.columns, obj, columns, [row(i) for i in items])
    if text:
        emit(text)
    return 0


_COLORS = {"RUNNING": "32", "READY": "32", "AVAILABLE": "32", "ERROR": "31", "FAILED": "31",
           "NOT_READY": "31", "STOPPED": "33", "CORDONED": "33", "DRAINING": "33"}


def use_color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def color(cell: str) -> str:
    """The state cell in a color that says good/bad/idle — only on a terminal without NO_COLOR."""
    code = _COLORS.get(cell)
    return f"\x1b[{code}m{cell}\x1b[0m" if code and use_color() else cell
