"""Narrow reads: a few top-level fields of every JSON value under a prefix, without decoding whole records.

An index that keeps a field or two of each record (the VM state index, the reconcile pass, the gauges)
needs neither the whole value nor a Python object per record. `Store.list_fields` pages like `list`
and returns, per key, its `mod_revision` and the named top-level fields of its JSON value. The default
(any backend) decodes each value in a worker thread and picks the fields (`pick`); SQLite extracts
them in SQL (`json_extract`, C code, run on the reader thread without the GIL), so the event loop
and the rest of the process are not held by a rebuild of 100,000 records.

A field that is missing, or null, or a value that is not a JSON object reads as None; a value that
is not JSON at all has `values` None (the caller decodes and reports it the usual way).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from plasmavmc.errors import InvalidArgument

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_FIELDS = 16


@dataclass(frozen=True, slots=True)
class Fields:
    key: str
    mod_revision: int
    values: tuple[Any, ...] | None  # the named fields in order (None: missing); None: not JSON


@dataclass(frozen=True)
class FieldsPage:
    items: tuple[Fields, ...]
    revision: int  # the store revision the page was read at
    next_start_after: str | None  # pass as start_after for the next page; None when done


def check_names(names: Sequence[str]) -> None:
    """1 to `MAX_FIELDS` top-level field names, each an identifier (they become JSON paths)."""
    if not 1 <= len(names) <= MAX_FIELDS:
        raise InvalidArgument("names", f"must name 1 to {MAX_FIELDS} fields")
    for name in names:
        if not _NAME.fullmatch(name):
            raise InvalidArgument("names", f"{name!r} is not a field name (letters, digits, '_')")


def picked(raw: bytes, names: Sequence[str]) -> tuple[Any, ...] | None:
    """The named top-level fields of one JSON value (None each when missing); None when not JSON."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return tuple(None for _ in names)
    return tuple(data.get(name) for name in names)


def parsed(array: str | None, count: int) -> tuple[Any, ...] | None:
    """The fields from SQLite's `json_extract(v, path, path, ...)` (a JSON array, one per path)."""
    if array is None:
        return tuple(None for _ in range(count))
    values = orjson.loads(array)
    return tuple(values[:count])
