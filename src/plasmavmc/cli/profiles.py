"""CLI profiles: named clouds in `~/.config/plasmavmc/config.toml`, like OpenStack's `clouds.yaml`.

    default_cloud = "lab"
    org = "acme"                  # top-level keys apply to every cloud (a plain client config)

    [clouds.lab]
    endpoints = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]   # calls move on while one is down
    project = "web"
    token = "..."
    ca_file = "/etc/plasmavmc/ca.pem"   # cert_file / key_file for mutual TLS (ca / cert / key also accepted)
    gateway = "http://10.0.0.1:8083"
    output = "json"

The file is `--config FILE` (env `PLASMAVMC_CLIENT_CONFIG`), else `$PLASMAVMC_CLI_CONFIG`, else
`$XDG_CONFIG_HOME/plasmavmc/config.toml` or `~/.config/plasmavmc/config.toml`, else
`~/.config/plasmavmc/client.toml`. A missing default file is no error; a missing named file or cloud is.
Keys: endpoints, org, project, token, ca_file, cert_file, key_file, gateway, output; anything else is an
error naming the key (a typo must not silently drop a setting). New credentials add a key to `KEYS`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALIASES = {"ca": "ca_file", "cert": "cert_file", "key": "key_file", "endpoint": "endpoints"}
KEYS = ("endpoints", "org", "project", "token", "ca_file", "cert_file", "key_file", "gateway", "output")


class ProfileError(ValueError):
    """The profile file or the selected cloud is unusable (the message says which and why)."""


@dataclass(frozen=True)
class Profile:
    name: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        """A setting: `endpoints` as a list of URLs, the others as strings (None when unset)."""
        value = self.values.get(key)
        if value is None:
            return None
        if key == "endpoints":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(e, str) for e in items):
                raise ProfileError(f"profile {self.name or '(top level)'}: endpoints must be a list of URLs")
            return items
        return str(value)


def config_file(env: Mapping[str, str], path: str | None = None) -> tuple[Path, bool]:
    """The profile file and whether it was named explicitly (a missing named file is an error)."""
    named = path or env.get("PLASMAVMC_CLI_CONFIG")
    if named:
        return Path(named).expanduser(), True
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    preferred = base / "plasmavmc" / "config.toml"
    legacy = Path.home() / ".config" / "plasmavmc" / "client.toml"
    return (legacy if not preferred.exists() and legacy.exists() else preferred), False


def _normal(section: Mapping[str, Any]) -> dict[str, Any]:
    return {ALIASES.get(k, k): v for k, v in section.items() if k not in ("clouds", "default_cloud")}


def load_profile(name: str | None, env: Mapping[str, str], path: str | None = None) -> Profile:
    """The cloud `name` (or the file's `default_cloud`) over the file's top-level keys."""
    file, named = config_file(env, path)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        if name or (named and path):
            raise ProfileError(f"{file} does not exist" + (f" (cloud {name!r} asked for)" if name else "")) from None
        return Profile()
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ProfileError(f"{file}: {err}") from None
    clouds = data.get("clouds", {})
    chosen = name or data.get("default_cloud")
    base = _normal(data)
    if not chosen:
        return _checked(Profile(None, base))
    if not isinstance(clouds, dict) or chosen not in clouds or not isinstance(clouds[chosen], dict):
        known = ", ".join(sorted(clouds)) if isinstance(clouds, dict) else ""
        raise ProfileError(f"cloud {chosen!r} is not in {file} (clouds there: {known or 'none'})")
    return _checked(Profile(str(chosen), {**base, **_normal(clouds[chosen])}))


def _checked(profile: Profile) -> Profile:
    where = f"cloud {profile.name!r}" if profile.name else "profile file"
    unknown = sorted(set(profile.values) - set(KEYS))
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r} (expected only {', '.join(KEYS)})")
    wrong = [k for k in KEYS[1:] if k in profile.values and not isinstance(profile.values[k], str)]
    if wrong:
        raise ProfileError(f"{where}: {wrong[0]} must be a string (the strings ca_file, cert_file, key_file, ...)")
    profile.get("endpoints")  # raises ProfileError when malformed
    return profile
