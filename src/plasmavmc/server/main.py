"""`plasmavmc-server` entry point: settings (spec §9.1, §9.3, §9.4), logging, run; `--check-config`;
`backup FILE` / `restore FILE` (server/backup.py).

The server runs on uvloop's event loop when it is installed (a dependency): every call's scheduling,
futures and socket wake-ups cost about a seventh less of the server's CPU than on asyncio's own loop
(GetVm: 704 -> 608 µs of server CPU a call, `bench/read_scale_bench.py`); asyncio's loop otherwise."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

from plasmavmc.config.logs import setup_logging
from plasmavmc.config.schema import check_config, settings_or_exit
from plasmavmc.config.server import parse_server_args
from plasmavmc.errors import PlasmaError
from plasmavmc.server import backup, gc_policy
from plasmavmc.server.app import run


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["backup"], ["restore"]):
        return backup.main(args, os.environ)
    settings = settings_or_exit(parse_server_args, args, os.environ, "plasmavmc-server")
    if "--check-config" in args:
        return check_config("plasmavmc-server", settings)
    setup_logging(settings.logging.level, settings.logging.format)
    gc_policy.configure()
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run(settings))
    except PlasmaError as err:
        print(f"plasmavmc-server: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"plasmavmc-server: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
