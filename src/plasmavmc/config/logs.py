"""Process-wide logging set-up for `plasmavmc-server` and `plasmavmc-agent`.

This module owns the two log formats of spec §9 (`[logging] format`): ``json`` writes one JSON object
per line (``ts``, ``level``, ``logger``, ``msg``, ``exc`` when an exception is attached, plus any
``extra=`` fields, plus the request's context fields of `observe/logctx.py`), for log shippers;
``text`` writes one readable line, for people. It also owns the
spelling of log levels (``LOG_LEVELS``), which the config validator reuses so that a level accepted in
a config file is always one `setup_logging` understands.

`setup_logging` replaces only the handler it installed itself, so calling it twice (a test, then the
main) leaves exactly one handler and never duplicates lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from plasmavmc.observe.logctx import ContextFilter

TRACE = 5
"""Below DEBUG: wire-level chatter (QMP messages, gRPC payloads)."""

LOG_LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LOG_FORMATS: tuple[str, ...] = ("json", "text")

logging.addLevelName(TRACE, "TRACE")

# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth keeping.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_HANDLER_MARK = "_plasmavmc_handler"


def _timestamp(record: logging.LogRecord) -> str:
    secs = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{secs}.{int(record.msecs):03d}Z"


def _exception_text(record: logging.LogRecord, formatter: logging.Formatter) -> str | None:
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises on an unserialisable `extra` value (falls back to str)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        exc = _exception_text(record, self)
        if exc:
            entry["exc"] = exc
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.123Z INFO  plasmavmc.core: message [key=value ...]`` then the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}" for key, value in vars(record).items() if key not in _RECORD_ATTRS
        )
        line = f"{_timestamp(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line} [{extras}]"
        exc = _exception_text(record, self)
        if exc:
            line = f"{line}\n{exc}"
        if record.stack_info:
            line = f"{line}\n{record.stack_info}"
        return line


def setup_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Configure the root logger: one handler to `stream` (default stderr) at `level` in `fmt`.

    Raises ValueError for an unknown level or format (the config loader has already rejected those,
    so this only fires on a programming error).
    """
    try:
        numeric = LOG_LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LOG_LEVELS)}") from None
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(LOG_FORMATS)}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())  # request id, principal, method, org, project, VM, node
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(numeric)
