"""Typed, validated configuration of `plasmavmc-server` and `plasmavmc-agent` (spec §9).

Owns the whole path from a TOML file, environment variables and command-line flags to frozen settings
dataclasses (precedence: flag > environment > file > default), and process logging set-up:

- `schema`  the generic loader and checks; `ConfigError` lists every problem, each naming its key
- `server`  `ServerSettings`, `parse_server_args`
- `agent`   `AgentSettings`, `parse_agent_args`
- `logs`    `setup_logging` (json / text)

A main does::

    settings = settings_or_exit(parse_server_args, sys.argv[1:], os.environ, "plasmavmc-server")
    setup_logging(settings.logging.level, settings.logging.format)
"""

from plasmavmc.config.agent import AgentSettings, parse_agent_args
from plasmavmc.config.logs import setup_logging
from plasmavmc.config.schema import ConfigError, LoggingSettings, TlsSettings, settings_or_exit, split_addr
from plasmavmc.config.server import ServerSettings, parse_server_args

__all__ = [
    "AgentSettings",
    "ConfigError",
    "LoggingSettings",
    "ServerSettings",
    "TlsSettings",
    "parse_agent_args",
    "parse_server_args",
    "settings_or_exit",
    "setup_logging",
    "split_addr",
]
