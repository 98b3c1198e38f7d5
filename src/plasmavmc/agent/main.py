"""`plasmavmc-agent` entry point: settings (spec §9.2-§9.4), logging, run."""

from __future__ import annotations

import asyncio
import os
import sys

from plasmavmc.agent.app import run
from plasmavmc.config.agent import parse_agent_args
from plasmavmc.config.logs import setup_logging
from plasmavmc.config.schema import check_config, settings_or_exit
from plasmavmc.errors import PlasmaError


def main(argv: list[str] | None = None) -> int:
    settings = settings_or_exit(parse_agent_args, sys.argv[1:] if argv is None else argv, os.environ, "plasmavmc-agent")
    if "--check-config" in (sys.argv[1:] if argv is None else argv):
        return check_config("plasmavmc-agent", settings)
    setup_logging(settings.logging.level, settings.logging.format)
    try:
        asyncio.run(run(settings))
    except (PlasmaError, OSError) as err:
        print(f"plasmavmc-agent: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
