"""The CLI's global options: where they may appear, and where their values come from.

Global options (`--endpoint`, `--org`, `--project`, `-o`, `-c`, `--cloud`, TLS files, `--token`, `--yes`)
are accepted anywhere on the command line: on the top parser with a `None` default and on every
subcommand parser with `SUPPRESS` (a value given after the subcommand lands in the same attribute;
one not given leaves the top parser's value alone). `resolve()` then fills each still-unset option
in this order: flag > environment variable > the selected profile (`cli.profiles`) > built-in default.

The CLI reads its own variables (`PLASMAVMC_ENDPOINT` or `PLASMAVMC_ENDPOINTS`, `PLASMAVMC_CLOUD`, ...);
`PLASMAVMC_ADDR` is the server's listen address (spec §9.3) and is not read here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from plasmavmc.cli.profiles import Profile, load_profile
from plasmavmc.client.endpoints import split_endpoints

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
FORMATS = ("table", "json", "yaml", "value")


@dataclass(frozen=True)
class Global:
    """One global option: its flags, the Namespace attribute, env variable, profile key and default."""

    flags: tuple[str, ...]
    dest: str
    help: str
    env: str | None = None
    profile_key: str | None = None
    default: Any = None
    extra: tuple[tuple[str, Any], ...] = ()
    shown: str = ""  # the default as the help says it, when it is not `default` itself

    @property
    def is_switch(self) -> bool:
        return dict(self.extra).get("action") == "store_true"

    def help_text(self) -> str:
        sources = [f"env {self.env}"] if self.env else []
        if self.profile_key:
            sources.append(f"profile key {self.profile_key}")
        shown = self.shown or ("none" if self.default is None else str(self.default))
        return f"{self.help} ({'; '.join([*sources, f'default: {shown}'])})"


GLOBALS = (
    Global(("--endpoint", "--addr"), "endpoints", "server API address: http://host:port, https://host:port or "
           "host:port; repeat it or give a comma list for several replicas (calls move on while one is down)",
           "PLASMAVMC_ENDPOINT(S)", "endpoints", DEFAULT_ENDPOINT, (("action", "append"),)),
    Global(("--config",), "config_file", "the CLI's profile file", "PLASMAVMC_CLIENT_CONFIG", None,
           shown="~/.config/plasmavmc/config.toml, else ~/.config/plasmavmc/client.toml"),
    Global(("--cloud",), "cloud", "named profile ([clouds.NAME]) in the profile file", "PLASMAVMC_CLOUD",
           shown="the file's default_cloud"),
    Global(("--org",), "org", "organization", "PLASMAVMC_ORG", "org", "default"),
    Global(("--project",), "project", "project", "PLASMAVMC_PROJECT", "project", "default"),
    Global(("-o", "--output"), "output", "output format", "PLASMAVMC_OUTPUT", "output", "table",
           (("choices", FORMATS),)),
    Global(("-c", "--column"), "columns", "show only this column (repeatable; table/value: header names, "
           "json/yaml: field names)", extra=(("action", "append"),), shown="all"),
    Global(("--ca", "--ca-file"), "ca_file", "CA certificate (PEM) that signed the server's certificate; implies "
           "TLS", "PLASMAVMC_CA_FILE", "ca_file"),
    Global(("--cert-file",), "cert_file", "client certificate (PEM) for mutual TLS", "PLASMAVMC_CERT_FILE",
           "cert_file"),
    Global(("--key-file",), "key_file", "client private key (PEM) for mutual TLS", "PLASMAVMC_KEY_FILE", "key_file"),
    Global(("--token",), "token", "token or API key sent with every call", "PLASMAVMC_TOKEN", "token",
           shown="$PLASMAVMC_CREDENTIALS, ~/.config/plasmavmc/credentials, /var/lib/plasmavmc/admin.token"),
    Global(("--gateway",), "gateway", "console WebSocket gateway URL", "PLASMAVMC_GATEWAY", "gateway",
           shown="the endpoint's host, port 8083"),
    Global(("-y", "--yes"), "yes", "do not ask before destructive commands", default=False,
           extra=(("action", "store_true"),)),
    Global(("-v", "--verbose"), "verbose", "say which endpoint answered (stderr)", default=False,
           extra=(("action", "store_true"),)),
)


def add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global options on `parser`: real (None) defaults on the top parser, SUPPRESS elsewhere."""
    group = parser.add_argument_group("global options (accepted before or after the subcommand)")
    for g in GLOBALS:
        kwargs: dict[str, Any] = dict(g.extra)
        if not g.is_switch and "choices" not in kwargs:
            kwargs["metavar"] = g.dest.upper().removesuffix("S")
        default = (False if g.is_switch else None) if top else argparse.SUPPRESS
        group.add_argument(*g.flags, dest=g.dest, help=g.help_text(), default=default, **kwargs)


def subparsers_of(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below `parser` (depth first, each once)."""
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if id(child) not in seen:
                    seen.add(id(child))
                    yield child
                    yield from subparsers_of(child)


def resolve(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Profile:
    """Fill every unset global from env, then the profile, then its default; returns the profile used."""
    env = os.environ if env is None else env
    cloud = args.cloud or env.get("PLASMAVMC_CLOUD") or None
    profile = load_profile(cloud, env, args.config_file or env.get("PLASMAVMC_CLIENT_CONFIG") or None)
    for g in GLOBALS:
        if getattr(args, g.dest, None) in (None, False, []) and not g.is_switch:
            value = _env(g, env) or (profile.get(g.profile_key) if g.profile_key else None)
            setattr(args, g.dest, value or g.default)
    if args.output not in FORMATS:
        raise ValueError(f"output format {args.output!r} (from env or profile): expected one of {', '.join(FORMATS)}")
    args.endpoints = split_endpoints(args.endpoints)
    args.endpoint = args.addr = args.endpoints[0]
    args.cloud = profile.name
    return profile


def _env(g: Global, env: Mapping[str, str]) -> Any:
    if g.dest == "endpoints":  # a comma list in either variable
        found = env.get("PLASMAVMC_ENDPOINTS") or env.get("PLASMAVMC_ENDPOINT")
        return [found] if found else None
    return env.get(g.env) if g.env else None
