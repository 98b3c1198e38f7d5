"""The request metadata of the call being served, as first value per key, read from gRPC once per call.

grpc.aio builds a fresh tuple each time a servicer context is asked for its `invocation_metadata()`,
and two layers of every call ask (the observing layer for `x-request-id`, authentication for
`authorization`). The first to ask keeps the answer in a context variable, which belongs to the call's
own task; the kept answer is used only for the same context object (held, so never another one)."""

from __future__ import annotations

import contextvars
from typing import Any

_KEPT: contextvars.ContextVar[tuple[Any, dict[str, str]] | None] = contextvars.ContextVar(
    "plasmavmc_call_metadata", default=None
)


def first_values(context: Any) -> dict[str, str]:
    """Each text metadata key of the call, with the first value sent for it (binary `-bin` ones left out)."""
    kept = _KEPT.get()
    if kept is not None and kept[0] is context:
        return kept[1]
    values: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str) and key not in values:
            values[key] = value
    _KEPT.set((context, values))
    return values
