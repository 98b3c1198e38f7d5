"""`plasmavmc-server` entry point: settings (spec §9.1, §9.3, §9.4), logging, run."""

from __future__ import annotations

import asyncio
import os
import sys

from plasmavmc.config.logs import setup_logging
from plasmavmc.config.schema import check_config, settings_or_exit
from plasmavmc.config.server import parse_server_args
from plasmavmc.errors import PlasmaError
from plasmavmc.server.app import run


def main(argv: list[str] | None = None) -> int:
    settings = settings_or_exit(
        parse_server_args, sys.argv[1:] if argv is None else argv, os.environ, "plasmavmc-server"
    )
    if "--check-config" in (sys.argv[1:] if argv is None else argv):
        return check_config("plasmavmc-server", settings)
    setup_logging(settings.logging.level, settings.logging.format)
    try:
        asyncio.run(run(settings))
    except PlasmaError as err:
        print(f"plasmavmc-server: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"plasmavmc-server: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
