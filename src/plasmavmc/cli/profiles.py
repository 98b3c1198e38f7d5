"""CLI profiles: named clouds in `~/.config/plasmavmc/config.toml`, like OpenStack's `clouds.yaml`.

    default_cloud = "lab"

    [clouds.lab]
    endpoints = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]   # the first is used today
    org = "acme"
    project = "web"
    token = "..."                 # or credentials added later (the format is open: unknown keys are kept)
    ca = "/etc/plasmavmc/ca.pem"  # cert / key for mutual TLS
    gateway = "http://10.0.0.1:8081"
    output = "json"

The file is `$PLASMAVMC_CLI_CONFIG`, else `$XDG_CONFIG_HOME/plasmavmc/config.toml`, else
`~/.config/plasmavmc/config.toml`. A missing file is no error unless a cloud was asked for by name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ProfileError(ValueError):
    """The profile file or the selected cloud is unusable (the message says which and why)."""


@dataclass(frozen=True)
class Profile:
    name: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        """A string setting; `endpoints[0]` reads the first entry of a list (or a plain `endpoint`)."""
        if key == "endpoints[0]":
            endpoints = self.values.get("endpoints") or [self.values.get("endpoint")]
            if not isinstance(endpoints, list):
                raise ProfileError(f"cloud {self.name!r}: endpoints must be a list of URLs")
            return str(endpoints[0]) if endpoints[0] else None
        value = self.values.get(key)
        return None if value is None else str(value)


def config_file(env: Mapping[str, str]) -> Path:
    if env.get("PLASMAVMC_CLI_CONFIG"):
        return Path(env["PLASMAVMC_CLI_CONFIG"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "plasmavmc" / "config.toml"


def load_profile(name: str | None, env: Mapping[str, str]) -> Profile:
    """The cloud `name` (or the file's `default_cloud`); an empty profile when none is configured."""
    path = config_file(env)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        if name:
            raise ProfileError(f"cloud {name!r} asked for, but {path} does not exist") from None
        return Profile()
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"{path}: {err}") from None
    clouds = data.get("clouds", {})
    chosen = name or data.get("default_cloud")
    if not chosen:
        return Profile()
    if not isinstance(clouds, dict) or chosen not in clouds:
        known = ", ".join(sorted(clouds)) if isinstance(clouds, dict) else ""
        raise ProfileError(f"cloud {chosen!r} is not in {path} (clouds there: {known or 'none'})")
    return Profile(str(chosen), clouds[chosen])
