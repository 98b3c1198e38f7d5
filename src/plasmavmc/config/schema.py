"""The generic settings loader: TOML + environment + CLI flags into frozen, validated dataclasses.

This module owns *how* configuration is read, not *what* is configured (that is `server.py` and
`agent.py`). Settings are frozen dataclasses; a nested dataclass is a TOML table, an optional one
(``X | None``) is a table that may be absent. `load` walks a parsed TOML dict against the dataclass
type hints and collects every problem before raising one `ConfigError`, each problem naming the dotted
key (``unknown key 'store.foo'``, ``'server.addr': expected a string, got integer``), so an operator
fixes a file in one pass instead of one error per restart.

Layering is CLI flag > environment variable > config file > default. Overrides are written into the
parsed file dict *before* validation (`Override`), and each remembers where it came from, so a bad
``PLASMAVMC_ADDR`` is reported as ``'server.addr' (from PLASMAVMC_ADDR): ...``.

Per-field validation is a `Check` in the field's metadata (`setting(..., check=...)`): a function that
returns the (possibly normalised, e.g. an alias resolved) value or raises ValueError with a message.
Checks run only on values that were supplied; defaults are trusted. A dataclass may define
``cross_check(self) -> Iterable[tuple[str, str]]`` yielding ``(field, message)`` for rules spanning
several fields (``etcd needs an endpoint``); those are skipped for fields that already have a problem.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from plasmavmc import validation
from plasmavmc.config.logs import LOG_FORMATS, LOG_LEVELS

T = TypeVar("T")
Check = Callable[[Any], Any]
"""Returns the value to store (normalised) or raises ValueError(message)."""


class ConfigError(Exception):
    """Configuration could not be loaded; `problems` lists every problem found, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def setting(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None,
            check: Check | None = None) -> Any:
    """A dataclass field with an optional validation `check` (see module docstring)."""
    metadata = {"check": check} if check is not None else {}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ---------------------------------------------------------------- checks

_HOST_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def _check_host(host: str) -> None:
    if not host:
        raise ValueError("host is empty")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"unterminated IPv6 address {host!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host[1:-1]!r}") from None
    elif not _HOST_RE.fullmatch(host):
        raise ValueError(f"invalid host {host!r}")


def _check_port(port: str) -> int:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be a number in 1-65535, got {port!r}")
    return int(port)


def split_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` / ``"[v6]:port"`` → (host without brackets, port); ValueError if malformed."""
    if "://" in addr:
        raise ValueError(f"a listen address is host:port, not a URL; got {addr!r} (PLASMAVMC_ADDR is the "
                         "server's listen address; the plasmavmc CLI reads PLASMAVMC_ENDPOINT)")
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise ValueError(f"expected host:port, got {addr!r}")
    if ":" in host and not host.startswith("["):
        raise ValueError(f"IPv6 hosts must be bracketed, as in '[::1]:8080'; got {addr!r}")
    _check_host(host)
    return host.strip("[]"), _check_port(port)


def check_addr(value: str) -> str:
    """A listen or dial address ``host:port`` (IPv6 as ``[::1]:8080``)."""
    split_addr(value)
    return value


def check_url(value: str) -> str:
    """``http://host[:port]`` or ``https://host[:port]``, optionally with a trailing slash."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    rest = rest.removesuffix("/")
    if any(c in rest for c in "/?#@"):
        raise ValueError(f"expected scheme://host[:port] with no path, query or credentials, got {value!r}")
    if rest.endswith("]") or ":" not in rest:
        _check_host(rest)
    else:
        split_addr(rest)
    return value


def check_ovsdb_endpoint(value: str) -> str:
    """An OVSDB endpoint: ``tcp:HOST:PORT``, ``ssl:HOST:PORT`` or ``unix:/PATH``."""
    if not validation.OVSDB_ENDPOINT_RE.fullmatch(value):
        raise ValueError(f"expected an OVSDB endpoint (tcp:HOST:PORT, ssl:HOST:PORT, unix:/PATH), got {value!r}")
    return value


def check_optional_cidr(value: str) -> str:
    """"" or an IPv4 network."""
    if value:
        ipaddress.IPv4Network(value)  # ValueError names what is wrong
    return value


def check_overlay_endpoint(value: str) -> str:
    """``[network] overlay_endpoint``: an OVSDB endpoint (OVN's northbound DB) or, as before, a URL."""
    if value.startswith(("http://", "https://")):
        return check_url(value)
    return check_ovsdb_endpoint(value)


def one_of(*choices: str, aliases: Mapping[str, str] | None = None) -> Check:
    """A string from `choices` (case-insensitive); an alias is replaced by what it stands for."""
    alias_map = dict(aliases or {})

    def check(value: str) -> str:
        key = value.lower()
        if key in alias_map:
            return alias_map[key]
        if key in choices:
            return key
        shown = ", ".join([*choices, *(a for a in alias_map if a.isascii())])
        raise ValueError(f"expected one of {shown}; got {value!r}")

    return check


check_log_level = one_of(*LOG_LEVELS)
check_log_format = one_of(*LOG_FORMATS)


def check_abs_path(value: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise ValueError(f"expected an absolute path, got {value!r}")
    return value


def check_command(value: str) -> str:
    """An executable: an absolute path, or a bare name looked up on PATH."""
    if not value or "\0" in value or ("/" in value and not value.startswith("/")):
        raise ValueError(f"expected an absolute path or a bare command name, got {value!r}")
    return value


def between(low: int, high: int, what: str) -> Check:
    """An integer from `low` to `high` (both included); `what` says the range in the error."""
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"expected {what}, got {value}")
        return value

    return check


check_positive = between(1, 2**63 - 1, "a positive integer")


def check_non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        raise ValueError("must not be empty")
    return value


def each(check: Check) -> Check:
    """Apply `check` to every element of an array; duplicates are dropped, order kept."""

    def check_all(values: tuple[Any, ...]) -> tuple[Any, ...]:
        out: list[Any] = []
        for i, item in enumerate(values):
            try:
                checked = check(item)
            except ValueError as exc:
                raise ValueError(f"item {i}: {exc}") from None
            if checked not in out:
                out.append(checked)
        return tuple(out)

    return check_all


def all_of(*checks: Check) -> Check:
    def check_chain(value: Any) -> Any:
        for check in checks:
            value = check(value)
        return value

    return check_chain


def matches(pattern: str, what: str) -> Check:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"invalid {what} {value!r}: must match {pattern}")
        return value

    return check


# ---------------------------------------------------------------- sections shared by server and agent

HYPERVISORS: tuple[str, ...] = ("kvm", "firecracker", "mvisor", "simulated")
check_hypervisor = one_of(*HYPERVISORS)


@dataclass(frozen=True)
class LoggingSettings:
    """``[logging]``: level (trace|debug|info|warn|warning|error) and format (json|text)."""

    level: str = setting("info", check=check_log_level)
    format: str = setting("json", check=check_log_format)


@dataclass(frozen=True)
class TlsSettings:
    """``[server.tls]`` / ``[agent.tls]``: if the table is present, cert_file and key_file are required.

    ``ca_file`` set means peers must present a certificate signed by that CA (mutual TLS).
    """

    cert_file: str = setting(check=check_abs_path)
    key_file: str = setting(check=check_abs_path)
    ca_file: str | None = setting(None, check=check_abs_path)

    @property
    def mutual(self) -> bool:
        return self.ca_file is not None


# ---------------------------------------------------------------- the loader

_BAD = object()
_TOML_NAMES = {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}


def _toml_type(value: Any) -> str:
    return _TOML_NAMES.get(type(value), type(value).__name__)


def _expected(tp: Any) -> str:
    name = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}.get(tp)
    return name or ("a table" if dataclasses.is_dataclass(tp) else "an array")


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class _Loader:
    """One pass over a parsed document; accumulates problems instead of stopping at the first."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = sources
        self.problems: list[str] = []
        self.bad_keys: set[str] = set()

    def problem(self, key: str, message: str) -> None:
        source = self.sources.get(key)
        label = f"'{key}' (from {source})" if source else f"'{key}'"
        self.problems.append(f"{label}: {message}")
        self.bad_keys.add(key)

    def table(self, cls: type[Any], data: Mapping[str, Any], prefix: str) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if key not in fields:
                self.problems.append(f"unknown key '{_join(prefix, key)}'")
        kwargs: dict[str, Any] = {}
        complete = True
        for name, fld in fields.items():
            key = _join(prefix, name)
            required = fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING
            if name in data:
                value = self.field(hints[name], data[name], key, fld.metadata.get("check"))
                if value is not _BAD:
                    kwargs[name] = value
                complete = complete and (value is not _BAD or not required)
            elif dataclasses.is_dataclass(hints[name]):
                kwargs[name] = self.table(hints[name], {}, key)
            elif required:
                self.problem(key, "required key is missing")
                complete = False
        if not complete:
            return _BAD
        obj = cls(**kwargs)
        self.cross_check(obj, prefix)
        return obj

    def cross_check(self, obj: Any, prefix: str) -> None:
        hook = getattr(obj, "cross_check", None)
        if hook is None:
            return
        for name, message in hook():
            key = _join(prefix, name)
            if key not in self.bad_keys:
                self.problem(key, message)

    def field(self, tp: Any, raw: Any, key: str, check: Check | None) -> Any:
        value = self.convert(_strip_optional(tp), raw, key)
        if value is _BAD or check is None:
            return value
        try:
            return check(value)
        except ValueError as exc:
            self.problem(key, str(exc))
            return _BAD

    def convert(self, tp: Any, raw: Any, key: str) -> Any:
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            if isinstance(raw, dict):
                return self.table(typing.cast(type[Any], tp), raw, key)
        elif origin in (tuple, list):
            if isinstance(raw, list):
                return self.array(typing.get_args(tp)[0], raw, key)
        elif origin is dict:
            if isinstance(raw, dict):
                return self.mapping(typing.get_args(tp)[1], raw, key)
        elif tp is float:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return float(raw)
        elif isinstance(raw, tp) and not (tp is int and isinstance(raw, bool)):
            return raw
        expected = "a table" if origin is dict else _expected(tp)
        self.problem(key, f"expected {expected}, got {_toml_type(raw)}")
        return _BAD

    def array(self, item_tp: Any, raw: list[Any], key: str) -> Any:
        items = [self.convert(item_tp, item, f"{key}[{i}]") for i, item in enumerate(raw)]
        if any(item is _BAD for item in items):
            self.bad_keys.add(key)
            return _BAD
        return tuple(items)

    def mapping(self, value_tp: Any, raw: dict[str, Any], key: str) -> Any:
        out = {k: self.convert(value_tp, v, _join(key, k)) for k, v in raw.items()}
        if any(v is _BAD for v in out.values()):
            self.bad_keys.add(key)
            return _BAD
        return out


def load(cls: type[T], data: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> T:
    """Build `cls` from a parsed TOML document; raise ConfigError listing every problem."""
    loader = _Loader(sources or {})
    obj = loader.table(cls, data, "")
    if loader.problems or obj is _BAD:
        raise ConfigError(loader.problems or ["configuration is incomplete"])
    return typing.cast(T, obj)


# ---------------------------------------------------------------- files, environment, flags


@dataclass(frozen=True)
class Override:
    """A value for dotted `key` that wins over the file; `source` names the variable or flag."""

    key: str
    value: Any
    source: str


def read_toml(path: str, source: str | None = None) -> dict[str, Any]:
    """Parse a config file; a missing, unreadable or malformed file is a ConfigError naming it."""
    where = f"config file '{path}'" + (f" (from {source})" if source else "")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([f"{where}: not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: invalid TOML: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{where}: cannot read: {exc}"]) from None


def apply_overrides(data: dict[str, Any], overrides: Iterable[Override]) -> dict[str, str]:
    """Write overrides into `data` in order (later wins); return {dotted key: source} for reporting.

    An override whose parent is not a table (a file saying ``server = 5``) is skipped: the loader
    reports that parent's type, which is the real problem.
    """
    sources: dict[str, str] = {}
    for override in overrides:
        *parents, last = override.key.split(".")
        node: Any = data
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[last] = override.value
            sources[override.key] = override.source
    return sources


def env_overrides(env: Mapping[str, str], variables: Mapping[str, str]) -> list[Override]:
    """{VARIABLE: dotted key} → overrides for the variables that are set and non-empty."""
    return [Override(key, env[var], var) for var, key in variables.items() if env.get(var)]


def flag_overrides(flags: Iterable[tuple[str, str, Any]]) -> list[Override]:
    """(flag, dotted key, parsed value or None) → overrides for the flags that were given."""
    return [Override(key, value, flag) for flag, key, value in flags if value is not None]


def load_layered(cls: type[T], config_path: str | None, path_source: str | None,
                 overrides: Iterable[Override]) -> tuple[T, dict[str, Any]]:
    """File (if any) < overrides, validated into `cls`. Also returns the merged raw document, so a
    caller can tell which keys were given explicitly."""
    data = read_toml(config_path, path_source) if config_path else {}
    sources = apply_overrides(data, overrides)
    return load(cls, data, sources), data


def config_path(cli_value: str | None, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The config file to read and where its name came from: ``--config`` > ``PLASMAVMC_CONFIG``."""
    if cli_value:
        return cli_value, "--config"
    if env.get("PLASMAVMC_CONFIG"):
        return env["PLASMAVMC_CONFIG"], "PLASMAVMC_CONFIG"
    return None, None


def package_version() -> str:
    """The version line of `-V`: package version and git revision (see `plasmavmc.version`)."""
    from plasmavmc.version import build_info

    info = build_info()
    return f"{info['version']} (git {info['revision']})"


def check_config(prog: str, settings: Any) -> int:
    """`--check-config`: the settings were valid (else settings_or_exit exited 2); show them, return 0."""
    print(f"{prog}: configuration OK")
    print(json.dumps(_redacted(dataclasses.asdict(settings)), indent=2, default=str))
    return 0


def _redacted(data: Any) -> Any:
    """Settings as shown by --check-config: secrets replaced by "***"."""
    if isinstance(data, dict):
        return {k: "***" if k in ("secret_key", "password", "token") and v else _redacted(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_redacted(v) for v in data]
    return data


def settings_or_exit(fn: Callable[[list[str], Mapping[str, str]], T], argv: list[str],
                     env: Mapping[str, str], prog: str) -> T:
    """Run a ``parse_*_args`` function; on ConfigError print every problem and exit with status 2.

    ``-h`` / ``-V`` and argparse usage errors raise SystemExit from argparse as usual (0 and 2).
    """
    try:
        return fn(argv, env)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{prog}: config error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
