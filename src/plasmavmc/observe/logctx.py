"""Per-request fields carried in contextvars: request id, principal, method, org, project, VM, node.

The gRPC interceptor (`observe/interceptor.py`) sets them when a call begins; core code adds the VM or
node it works on (`bind`). `ContextFilter` copies every set field onto each log record, so a JSON log
line carries them as fields (never inside the message text), and the event writer takes its actor from
`principal`. Only identifiers live here: never tokens or other secrets.
"""

from __future__ import annotations

import contextvars
import logging
import random

FIELDS = ("request_id", "principal", "method", "org", "project", "vm_id", "node")
_VARS: dict[str, contextvars.ContextVar[str]] = {
    name: contextvars.ContextVar(f"plasmavmc_{name}", default="") for name in FIELDS
}
_IDS = random.Random()  # seeded from os.urandom once: ids must be unique, not secret (no syscall per call)


def new_request_id() -> str:
    """A fresh request id: 16 hex digits."""
    return f"{_IDS.getrandbits(64):016x}"


def get(name: str) -> str:
    return _VARS[name].get()


def bind(**values: str | None) -> None:
    """Set fields for the rest of this task (and tasks it starts); None or "" leaves a field as it is."""
    for name, value in values.items():
        if value:
            _VARS[name].set(value)


def bind_one(name: str, value: str) -> None:
    """`bind` of one field (the per-call path: no keyword dict)."""
    if value:
        _VARS[name].set(value)


def current() -> dict[str, str]:
    return {name: var.get() for name, var in _VARS.items() if var.get()}


def actor() -> str:
    """Who causes what happens now: the API caller, `node:<id>` for agent reports, or `system`."""
    return get("principal") or (f"node:{get('node')}" if get("node") else "system")


class ContextFilter(logging.Filter):
    """Adds the set context fields to every record that passes through the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
