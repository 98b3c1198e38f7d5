"""Settings of the control-plane process, `plasmavmc-server` (spec §9.1, §9.3, §9.4).

This module owns what the server can be configured with (the dataclasses below, whose docstrings mark
every key that goes beyond the spec as *ext*), and its command line. Reading and validating is the
generic loader's job (`schema.py`); `parse_server_args` only says which flags and environment variables
map onto which keys.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from plasmavmc.config.schema import (
    LoggingSettings,
    TlsSettings,
    check_abs_path,
    check_addr,
    check_hypervisor,
    check_positive,
    check_url,
    config_path,
    each,
    env_overrides,
    flag_overrides,
    load_layered,
    matches,
    one_of,
    package_version,
    setting,
)

STORE_BACKENDS: tuple[str, ...] = ("sqlite", "etcd")
IMAGE_STORE_BACKENDS: tuple[str, ...] = ("local", "s3")

SERVER_ENV: dict[str, str] = {
    "PLASMAVMC_ADDR": "server.addr",
    "PLASMAVMC_BOOTSTRAP_CREDENTIAL": "iam.bootstrap_credential_path",
    "PLASMAVMC_LOG_LEVEL": "logging.level",
}
"""Environment variables (spec §9.3) → keys; PLASMAVMC_CONFIG is handled separately (it names the file)."""


@dataclass(frozen=True)
class ServerSection:
    """``[server]``: ``addr`` is the gRPC API listen address (spec, default 0.0.0.0:8080).

    ext ``metrics_addr`` (default 0.0.0.0:8081): the health/metrics HTTP listener (spec Appendix B).
    ext ``console_addr`` (default 0.0.0.0:8083): the WebSocket console gateway (serial, VNC); every
    connection needs a console ticket or token with ``plasmavmc:vms:console`` on the VM.
    ext ``rpc_metrics`` (default true): the gRPC interceptor (request ids, log fields, per-RPC metrics);
    false only to measure what it costs (`bench.observability_bench`).
    ``[server.tls]`` is optional; with ``ca_file`` set, clients must present certificates (mTLS) and
    agent heartbeats/reports are accepted only from the certificate of the node they name.
    """

    addr: str = setting("0.0.0.0:8080", check=check_addr)
    metrics_addr: str = setting("0.0.0.0:8081", check=check_addr)
    console_addr: str = setting("0.0.0.0:8083", check=check_addr)
    rpc_metrics: bool = setting(True)
    tls: TlsSettings | None = None


@dataclass(frozen=True)
class StoreTls:
    """ext ``[store.tls]``: client TLS towards etcd; every key optional, cert and key go together."""

    ca_file: str | None = setting(None, check=check_abs_path)
    cert_file: str | None = setting(None, check=check_abs_path)
    key_file: str | None = setting(None, check=check_abs_path)

    def cross_check(self) -> Iterable[tuple[str, str]]:
        if self.cert_file and not self.key_file:
            yield "key_file", "required when cert_file is set"
        if self.key_file and not self.cert_file:
            yield "cert_file", "required when key_file is set"


def _check_sqlite_path(value: str) -> str:
    return value if value == ":memory:" else check_abs_path(value)


@dataclass(frozen=True)
class StoreSettings:
    """``[store]``: where desired state lives.

    ``backend``: ``sqlite`` (default) or ``etcd``; the spec's ``chainfire`` is accepted as an alias and
    normalised to ``etcd``. ``chainfire_endpoints`` (spec) lists etcd URLs; at least one is required for
    etcd. ext ``endpoints``: the same list under a neutral name (both are merged, see `etcd_endpoints`).
    ext ``path`` (default /var/lib/plasmavmc/state.db, or ``:memory:``): the SQLite file.
    ext ``[store.tls]``: client TLS towards etcd.
    ext ``lease_ttl_seconds`` (default 5): with etcd, the TTL of each server's lease; a dead leader is
    replaced, and its unfinished operations adopted, within about this long.
    """

    backend: str = setting("sqlite", check=one_of(*STORE_BACKENDS, aliases={"chainfire": "etcd"}))
    chainfire_endpoints: tuple[str, ...] = setting((), check=each(check_url))
    endpoints: tuple[str, ...] = setting((), check=each(check_url))
    path: str = setting("/var/lib/plasmavmc/state.db", check=_check_sqlite_path)
    lease_ttl_seconds: int = setting(5, check=check_positive)
    tls: StoreTls | None = None

    @property
    def etcd_endpoints(self) -> tuple[str, ...]:
        """``chainfire_endpoints`` then ``endpoints``, without duplicates."""
        return tuple(dict.fromkeys((*self.chainfire_endpoints, *self.endpoints)))

    def cross_check(self) -> Iterable[tuple[str, str]]:
        if self.backend == "etcd" and not self.etcd_endpoints:
            yield "chainfire_endpoints", "backend 'etcd' needs at least one endpoint URL (or store.endpoints)"


@dataclass(frozen=True)
class IamSettings:
    """``[iam]`` (spec): all optional. Without ``endpoint`` the built-in RBAC decides (role bindings in the
    state store); with it, an external IAM is asked (``POST {endpoint}/v1/authorize``), authenticating
    with the token in ``token_path`` as ``service_account``.

    ext ``bootstrap_credential_path`` (default /var/lib/plasmavmc/admin.token): on a store with no
    ``admin`` principal the server makes one (system-admin) and writes its API key here, mode 0600 (a
    key already in the file is registered instead). The CLI on the same machine reads it.
    ext ``audit_retention_days`` (default 30) and ``audit_max_entries`` (default 100000) bound the log.
    """

    endpoint: str | None = setting(None, check=check_url)
    service_account: str | None = None
    token_path: str | None = setting(None, check=check_abs_path)
    bootstrap_credential_path: str = setting("/var/lib/plasmavmc/admin.token", check=check_abs_path)
    audit_retention_days: int = setting(30, check=check_positive)
    audit_max_entries: int = setting(100_000, check=check_positive)


def _check_weight(value: int) -> int:
    if not 0 <= value <= 100:
        raise ValueError("must be between 0 and 100")
    return value


def _check_ratio(value: float) -> float:
    if not 0.1 <= value <= 100.0:
        raise ValueError("must be between 0.1 and 100")
    return value


def _check_count(value: int) -> int:
    if value < 0:
        raise ValueError("must not be negative")
    return value


#: per-VM host memory beyond guest RAM, measured on the tiny guest (README "Per-VM overhead")
VM_MEMORY_OVERHEAD_MIB = {"kvm": 72, "firecracker": 16, "mvisor": 32, "simulated": 0}


def _check_overheads(table: dict[str, int]) -> dict[str, int]:
    for name, mib in table.items():
        check_hypervisor(name)
        if not isinstance(mib, int) or not 0 <= mib <= 65536:
            raise ValueError(f"{name}: expected MiB between 0 and 65536, got {mib!r}")
    return {**VM_MEMORY_OVERHEAD_MIB, **table}


@dataclass(frozen=True)
class SchedulerSettings:
    """``[scheduler]`` (spec): ``default_hypervisor`` for VMs that do not name one.

    ext ``least_allocated_weight``, ``balanced_resource_weight``, ``locality_weight`` (0-100, default 1):
    how much each scorer counts (0 turns it off). ext ``feasible_nodes_to_score`` (default 100, 0 = all):
    ranking stops filtering once this many nodes passed (see scheduler/framework.py).
    ext ``cpu_overcommit_ratio``, ``memory_overcommit_ratio``, ``storage_overcommit_ratio`` (0.1-100,
    default 1.0): a node's ``allocatable`` is its capacity times the ratio.
    ext ``vm_memory_overhead_mib`` (table hypervisor = MiB, 0-65536; defaults measured, README "Per-VM
    overhead"): host memory each VM of that hypervisor claims on its node beyond its guest memory (the
    VMM's own cost), so a node's memory is not over-committed by its VMs' hypervisor processes.
    """

    default_hypervisor: str = setting("kvm", check=check_hypervisor)
    least_allocated_weight: int = setting(1, check=_check_weight)
    balanced_resource_weight: int = setting(1, check=_check_weight)
    locality_weight: int = setting(1, check=_check_weight)
    feasible_nodes_to_score: int = setting(100, check=_check_count)
    cpu_overcommit_ratio: float = setting(1.0, check=_check_ratio)
    memory_overcommit_ratio: float = setting(1.0, check=_check_ratio)
    storage_overcommit_ratio: float = setting(1.0, check=_check_ratio)
    vm_memory_overhead_mib: dict[str, int] = field(default_factory=lambda: dict(VM_MEMORY_OVERHEAD_MIB),
                                                   metadata={"check": _check_overheads})


# The spec writes "lightningst\u043e\u0440" (Cyrillic o and r); accept it and its half-fixed forms.
_S3_ALIASES = {
    name: "s3"
    for name in ("lightningstor", "lightningst\u043e\u0440", "lightningst\u043er", "lightningsto\u0440")
}
_BUCKET_RE = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"


@dataclass(frozen=True)
class ImageStoreSettings:
    """``[image_store]``: where image templates live.

    ``backend``: ``local`` (default) or ``s3``; the spec's ``lightningstor`` is an alias of ``s3`` (also
    as the spec misprints it, with Cyrillic ``\\u043e\\u0440``). ``endpoint`` (required for s3)
    and ``bucket`` (default vm-images) are spec keys.
    ext ``path`` (default /var/lib/plasmavmc/images): root directory of the local backend.
    ext ``seed_dirs``: directories of built guest images registered at start-up.
    ext ``access_key``, ``secret_key``, ``region``: S3 credentials and region.
    """

    backend: str = setting("local", check=one_of(
        *IMAGE_STORE_BACKENDS, aliases=_S3_ALIASES))
    endpoint: str | None = setting(None, check=check_url)
    bucket: str = setting("vm-images", check=matches(_BUCKET_RE, "bucket name"))
    path: str = setting("/var/lib/plasmavmc/images", check=check_abs_path)
    seed_dirs: tuple[str, ...] = setting((), check=each(check_abs_path))
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None

    def cross_check(self) -> Iterable[tuple[str, str]]:
        if self.backend == "s3" and not self.endpoint:
            yield "endpoint", "backend 's3' needs an endpoint URL"


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an address or CIDR block (e.g. 10.0.0.0/8)") from None
    return value


@dataclass(frozen=True)
class ImagesSettings:
    """ext ``[images]``: what image ingest accepts.

    ``max_virtual_size_gib`` (default 2048): an image whose virtual (expanded) size is larger is refused.
    ``url_allow_cidrs`` (default none): addresses a URL import may reach although they are loopback,
    link-local, private, multicast, reserved or this server's own (all refused by default).
    ``url_timeout_seconds`` (default 3600) and ``url_max_redirects`` (default 5) bound one URL import.
    """

    max_virtual_size_gib: int = setting(2048, check=check_positive)
    url_allow_cidrs: tuple[str, ...] = setting((), check=each(_check_cidr))
    url_timeout_seconds: int = setting(3600, check=check_positive)
    url_max_redirects: int = setting(5, check=check_positive)


@dataclass(frozen=True)
class AgentsSettings:
    """ext ``[agents]``: ``heartbeat_timeout_seconds`` (default 15) — a node whose agent has not reported
    for this long is NotReady.

    ext ``[agents.tls]``: how the control plane dials agents — ``cert_file``/``key_file`` its own
    certificate (`plasmavmc pki init` writes control-plane.pem/.key), ``ca_file`` the cluster CA that
    agents' certificates must chain to; each agent must then present the certificate of the node it
    registered as. Absent: plain gRPC (the one-machine loopback default).
    """

    heartbeat_timeout_seconds: int = setting(15, check=check_positive)
    tls: TlsSettings | None = None

    def cross_check(self) -> Iterable[tuple[str, str]]:
        if self.tls is not None and self.tls.ca_file is None:
            yield "tls.ca_file", "required: the CA that signed the agents' node certificates"


@dataclass(frozen=True)
class EventsSettings:
    """ext ``[events]``: the VM event history kept (``max_age_seconds``, default 7 days; ``max_per_vm``,
    default 200); ``enabled = false`` stops writing events (for overhead measurements only)."""

    enabled: bool = setting(True)
    max_age_seconds: int = setting(7 * 24 * 3600, check=check_positive)
    max_per_vm: int = setting(200, check=check_positive)


@dataclass(frozen=True)
class ServerSettings:
    """Everything `plasmavmc-server` is configured with (spec §9.1 plus the ext keys of each section)."""

    server: ServerSection = field(default_factory=ServerSection)
    store: StoreSettings = field(default_factory=StoreSettings)
    iam: IamSettings = field(default_factory=IamSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    image_store: ImageStoreSettings = field(default_factory=ImageStoreSettings)
    images: ImagesSettings = field(default_factory=ImagesSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    agents: AgentsSettings = field(default_factory=AgentsSettings)
    events: EventsSettings = field(default_factory=EventsSettings)



def server_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plasmavmc-server", description="PlasmaVMC control plane (gRPC API, scheduler, reconciler)."
    )
    parser.add_argument("-c", "--config", metavar="PATH", help="config file (env PLASMAVMC_CONFIG)")
    parser.add_argument("-a", "--addr", metavar="ADDR", help="API listen address (env PLASMAVMC_ADDR)")
    parser.add_argument("-l", "--log-level", metavar="LEVEL", help="log level (env PLASMAVMC_LOG_LEVEL)")
    parser.add_argument("--metrics-addr", metavar="ADDR", help="health/metrics HTTP listen address")
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration (file, environment, flags), print it and exit")
    return parser


def parse_server_args(argv: list[str], env: Mapping[str, str]) -> ServerSettings:
    """Flags > environment > config file > defaults → validated ServerSettings, or ConfigError."""
    args = server_arg_parser().parse_args(argv)
    path, path_source = config_path(args.config, env)
    overrides = env_overrides(env, SERVER_ENV) + flag_overrides([
        ("--addr", "server.addr", args.addr),
        ("--log-level", "logging.level", args.log_level),
        ("--metrics-addr", "server.metrics_addr", args.metrics_addr),
    ])
    settings, _ = load_layered(ServerSettings, path, path_source, overrides)
    return settings
