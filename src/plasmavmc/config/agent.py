"""Settings of the node agent, `plasmavmc-agent` (spec §9.2, §9.3, §9.4).

This module owns what the agent can be configured with (the dataclasses below, whose docstrings mark
every key beyond the spec as *ext*) and its command line. Reading and validating is the generic
loader's job (`schema.py`). Two values are derived after loading, so consumers never re-derive them:
``agent.control_planes`` is the full, merged list of control-plane URLs (``control_plane`` is its
first element), and ``agent.advertise_addr`` is always set.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plasmavmc import validation, validation_reports
from plasmavmc.config.schema import (
    LoggingSettings,
    Override,
    TlsSettings,
    all_of,
    between,
    check_abs_path,
    check_addr,
    check_command,
    check_hypervisor,
    check_non_empty,
    check_optional_cidr,
    check_overlay_endpoint,
    check_ovsdb_endpoint,
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
    split_addr,
)
from plasmavmc.errors import InvalidArgument
from plasmavmc.limits import LABEL_VALUE_MAX, MAX_LABELS

NODE_ID_RE = r"[a-z0-9][a-z0-9._-]{0,62}"
DEFAULT_CONTROL_PLANE = "http://127.0.0.1:8080"
AGENT_ENV: dict[str, str] = {
    "PLASMAVMC_NODE_ID": "agent.node_id",
    "PLASMAVMC_LOG_LEVEL": "logging.level",
}
"""Environment variables (spec §9.3) → keys. PLASMAVMC_ADDR is the *server's* API address (spec), so
the agent ignores it: one shell running both processes must not make them fight over a port."""

_LABEL_KEY_RE = r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})"


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    """The rules the control plane applies to the labels of a heartbeat (`validation.labels`), so a node
    whose labels it would refuse does not start."""
    key_check = matches(_LABEL_KEY_RE, "label key")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        key_check(key)
        try:
            validation.text(value, key, LABEL_VALUE_MAX)
        except InvalidArgument as err:
            raise ValueError(f"label {key!r}: {err.message}") from None
    return labels


def check_ipv4_or_empty(value: str) -> str:
    """`[network] underlay_address`: the rule the control plane applies to it in a heartbeat."""
    try:
        return validation_reports.underlay_address(value, "underlay_address")
    except InvalidArgument as err:
        raise ValueError(err.message) from None


@dataclass(frozen=True)
class AgentSection:
    """``[agent]``: ``node_id`` (spec; required after merging file, PLASMAVMC_NODE_ID and ``-n``;
    ``[a-z0-9][a-z0-9._-]{0,62}``) and ``control_plane`` (spec; default http://127.0.0.1:8080).

    ext ``control_planes``: several control-plane URLs (HA). After loading it holds the merged list:
    ``control_plane`` (if set explicitly) first, then ``control_planes``; ``control_plane`` is then the
    first entry. ``--control-plane`` replaces both.
    ext ``addr`` (default 0.0.0.0:8082, spec Appendix B): the AgentService listen address.
    ext ``advertise_addr``: the address the control plane dials; default ``addr`` with a wildcard host
    (0.0.0.0 / ::) replaced by loopback.
    ext ``metrics_addr`` (default 0.0.0.0:8084): the agent's HTTP port (/health, /ready, /metrics).
    ext ``heartbeat_interval_seconds`` (default 5), ext ``labels``: string map reported with the node.
    ``[agent.tls]`` (spec) is optional: the agent's certificate (from `plasmavmc pki node`), served on
    ``addr`` and presented to the control plane; with ``ca_file`` the agent verifies the control plane
    against it and serves only the control plane's certificate.
    """

    node_id: str = setting("", check=matches(NODE_ID_RE, "node id"))
    control_plane: str = setting(DEFAULT_CONTROL_PLANE, check=check_url)
    control_planes: tuple[str, ...] = setting((), check=each(check_url))
    addr: str = setting("0.0.0.0:8082", check=check_addr)
    advertise_addr: str = setting("", check=check_addr)
    metrics_addr: str = setting("0.0.0.0:8084", check=check_addr)
    heartbeat_interval_seconds: int = setting(5, check=check_positive)
    labels: dict[str, str] = field(default_factory=dict, metadata={"check": _check_labels})
    tls: TlsSettings | None = None

    def cross_check(self) -> Iterable[tuple[str, str]]:
        if not self.node_id:
            yield "node_id", "required: set it in the config file, PLASMAVMC_NODE_ID or --node-id"


_check_id = between(0, 2**32 - 2, "a uid/gid between 0 and 4294967294")
_check_tb_size = between(0, 4096, "0 (QEMU's default) to 4096 MiB")
_check_vmm_cpu_percent = between(0, 1000, "0 to 1000 (percent of one CPU)")
_check_pool_size = between(0, 64, "0 (no pool) to 64 waiting processes")
_check_cpu_weight = between(1, 10000, "1 to 10000 (cgroup v2 cpu.weight units: 100 is the kernel's default)")
_slice_range = between(100, 100_000, "0 (the kernel's default) or 100 to 100000 microseconds")


def _check_slice(value: int) -> int:
    return value if value == 0 else _slice_range(value)


@dataclass(frozen=True)
class KvmSettings:
    """``[hypervisors.kvm]``: ``qemu_path``, ``runtime_dir`` (spec); ext ``qemu_img_path``;
    ext ``accel`` (auto|kvm|tcg, default auto: KVM when usable, else TCG — see DESIGN.md);
    ext ``tcg_tb_size_mib`` (default 64, 0 = QEMU's own default of up to 1 GiB): the cap on each VM's TCG
    translation cache, the largest per-VM host cost beyond guest RAM under TCG (README "Per-VM overhead")."""

    qemu_path: str = setting("/usr/bin/qemu-system-x86_64", check=check_command)
    runtime_dir: str = setting("/var/run/plasmavmc/kvm", check=check_abs_path)
    qemu_img_path: str = setting("/usr/bin/qemu-img", check=check_command)
    accel: str = setting("auto", check=one_of("auto", "kvm", "tcg"))
    tcg_tb_size_mib: int = setting(64, check=_check_tb_size)


@dataclass(frozen=True)
class FirecrackerSettings:
    """``[hypervisors.firecracker]`` (spec): ``fc_path``, ``jailer_path``, ``runtime_dir``
    (``scripts/install-firecracker`` puts both binaries in /usr/local/bin).

    ext, the jailer (spec §11.3): ``jailer`` (default true; false runs Firecracker unjailed, for
    development), ``jailer_uid`` / ``jailer_gid`` (default 0; an unprivileged id needs no account),
    ``cgroup_version`` (auto|1|2, default auto: what /sys/fs/cgroup is), ``parent_cgroup`` (default
    plasmavmc), ``cgroup_limits`` (default true: CPU quota of vcpus CPUs plus ``vmm_cpu_percent`` of one
    CPU for Firecracker's own threads, default 50, 0-1000; memory of the guest plus ``memory_overhead_mib``,
    default 64). ext ``balloon`` (default false): give every VM a virtio-balloon
    device so memory can be reclaimed from guests that have the driver. ext ``diff_snapshots`` (default
    false): track dirty pages, so a VM's later snapshots store only the memory written since the
    previous one (restore merges them). ext ``warm_pool`` (default 2, 0 disables): how many Firecracker
    processes the agent keeps launched (jailed) and waiting, so that a create with ``start`` or a clone
    takes one instead of running the jailer and an exec (see README "Firecracker fast path"). ext
    ``guest_cpu_weight`` (default 10, 1-10000; with the jailer): the CPU weight of all the node's
    Firecracker VMs together against the node's own processes (the agent, a server) where both want the
    same CPU, written at agent start to ``parent_cgroup`` (v2 ``cpu.weight``, v1 ``cpu.shares`` =
    weight x 1024 / 100). A weight is a share under contention only: VMs alone use every CPU their
    quota allows. ext ``guest_slice_us`` (default 100, 100-100000, 0 = the kernel's default): the
    scheduler slice of the VMs' vCPU threads (set on the VMM thread that makes them; Linux 6.12 and
    later; older kernels ignore it): a
    control-plane thread woken onto the CPU of a busy guest runs about that soon, not after the
    kernel's default slice (1.4 ms on 2 CPUs); see ``hypervisor/sched.py``.
    """

    fc_path: str = setting("/usr/bin/firecracker", check=check_command)
    jailer_path: str = setting("/usr/bin/jailer", check=check_command)
    runtime_dir: str = setting("/var/run/plasmavmc/fc", check=check_abs_path)
    jailer: bool = True
    jailer_uid: int = setting(0, check=_check_id)
    jailer_gid: int = setting(0, check=_check_id)
    cgroup_version: str = setting("auto", check=one_of("auto", "1", "2"))
    parent_cgroup: str = setting("plasmavmc", check=matches(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", "cgroup name"))
    cgroup_limits: bool = True
    memory_overhead_mib: int = setting(64, check=check_positive)
    vmm_cpu_percent: int = setting(50, check=_check_vmm_cpu_percent)
    balloon: bool = False
    diff_snapshots: bool = False
    warm_pool: int = setting(2, check=_check_pool_size)
    guest_cpu_weight: int = setting(10, check=_check_cpu_weight)
    guest_slice_us: int = setting(100, check=_check_slice)


@dataclass(frozen=True)
class MvisorSettings:
    """ext ``[hypervisors.mvisor]``: ``mvisor_path`` (default ``mvisor``, looked up on PATH),
    ``runtime_dir``, ``bios_path`` (SeaBIOS as ``scripts/install-mvisor`` installs it)."""

    mvisor_path: str = setting("mvisor", check=check_command)
    runtime_dir: str = setting("/var/run/plasmavmc/mvisor", check=check_abs_path)
    bios_path: str = setting("/usr/local/share/mvisor/bios-256k.bin", check=check_abs_path)


@dataclass(frozen=True)
class HypervisorsSettings:
    """``[hypervisors]`` (spec): ``enabled``, a non-empty subset of kvm|firecracker|mvisor|simulated."""

    enabled: tuple[str, ...] = setting(("kvm",), check=all_of(each(check_hypervisor), check_non_empty))
    kvm: KvmSettings = field(default_factory=KvmSettings)
    firecracker: FirecrackerSettings = field(default_factory=FirecrackerSettings)
    mvisor: MvisorSettings = field(default_factory=MvisorSettings)


@dataclass(frozen=True)
class StorageSettings:
    """``[storage]`` (spec): ``image_cache_dir``, ``runtime_dir``, ``cache_size_gib`` (default 100).

    Deviation: ``image_cache_dir`` defaults to /var/lib/plasmavmc/image-cache, not the spec's
    /var/lib/plasmavmc/images, which is the server's local image store: on a one-machine install the
    agent's cache (which it evicts) must not be the server's store (which it must not touch).
    """

    image_cache_dir: str = setting("/var/lib/plasmavmc/image-cache", check=check_abs_path)
    runtime_dir: str = setting("/var/lib/plasmavmc/vms", check=check_abs_path)
    cache_size_gib: int = setting(100, check=check_positive)


@dataclass(frozen=True)
class NetworkSettings:
    """``[network]`` (spec): ``overlay_endpoint`` (the OVN northbound DB: ``tcp:HOST:PORT``,
    ``ssl:HOST:PORT`` or ``unix:PATH``; an http(s) URL is still accepted and unused), ``bridge_name`` (a
    Linux interface name, at most 15 characters; default plasmavmc0): the stem of the providers' names —
    the bridge provider's nftables table and, by its first 5 characters, each tenant network's bridge
    (``plasm<VNI hex>``); the OVN provider's row prefix and owner mark.
    Ext keys: ``provider`` ("bridge", the embedded Linux-bridge provider; "ovn", the cluster engine at
    ``overlay_endpoint``; or "none": NICs are bare taps on no bridge), ``state_dir`` (the provider's port
    records), ``ovs_endpoint`` (ovn: this node's Open_vSwitch DB), ``integration_bridge`` (ovn: br-int),
    ``external_cidr``/``external_gateway`` (ovn: the uplink subnet holding the routers' SNAT addresses and
    its next hop, for networks with egress NAT; the gateway node maps ``plasmavmc-external`` to its
    uplink bridge in ``ovn-bridge-mappings``), ``underlay_address`` (this node's IPv4 tunnel endpoint: the
    source of its VXLAN devices, reported to the control plane and handed to the other nodes as their peer;
    "" = networks stay on this node)."""

    overlay_endpoint: str | None = setting(None, check=check_overlay_endpoint)
    bridge_name: str = setting("plasmavmc0", check=matches(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", "bridge name"))
    provider: str = setting("bridge", check=one_of("bridge", "ovn", "none"))
    state_dir: str = setting("/var/lib/plasmavmc/network", check=check_abs_path)
    ovs_endpoint: str = setting("unix:/var/run/openvswitch/db.sock", check=check_ovsdb_endpoint)
    integration_bridge: str = setting("br-int", check=matches(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", "bridge name"))
    external_cidr: str = setting("", check=check_optional_cidr)
    external_gateway: str = setting("", check=check_ipv4_or_empty)
    underlay_address: str = setting("", check=check_ipv4_or_empty)


@dataclass(frozen=True)
class AgentSettings:
    """Everything `plasmavmc-agent` is configured with (spec §9.2 plus the ext keys of each section)."""

    agent: AgentSection = field(default_factory=AgentSection)
    hypervisors: HypervisorsSettings = field(default_factory=HypervisorsSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)


def default_advertise_addr(addr: str) -> str:
    """``addr`` with a wildcard host replaced by loopback: 0.0.0.0:8082 → 127.0.0.1:8082."""
    host, port = split_addr(addr)
    if host in ("0.0.0.0", ""):
        return f"127.0.0.1:{port}"
    if host == "::":
        return f"[::1]:{port}"
    return addr


def _derive(settings: AgentSettings, raw: Mapping[str, Any]) -> AgentSettings:
    agent = settings.agent
    explicit = "control_plane" in raw.get("agent", {})
    planes = ((agent.control_plane,) if explicit or not agent.control_planes else ()) + agent.control_planes
    planes = tuple(dict.fromkeys(planes))
    section = dataclasses.replace(
        agent,
        control_plane=planes[0],
        control_planes=planes,
        advertise_addr=agent.advertise_addr or default_advertise_addr(agent.addr),
    )
    return dataclasses.replace(settings, agent=section)


def agent_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plasmavmc-agent", description="PlasmaVMC node agent (runs VMs on this node)."
    )
    parser.add_argument("-c", "--config", metavar="PATH", help="config file (env PLASMAVMC_CONFIG)")
    parser.add_argument("-n", "--node-id", metavar="ID", help="node identifier (env PLASMAVMC_NODE_ID)")
    parser.add_argument("--control-plane", metavar="URL", help="control plane endpoint")
    parser.add_argument("-l", "--log-level", metavar="LEVEL", help="log level (env PLASMAVMC_LOG_LEVEL)")
    parser.add_argument("--addr", metavar="ADDR", help="AgentService listen address")
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration (file, environment, flags), print it and exit")
    return parser


def parse_agent_args(argv: list[str], env: Mapping[str, str]) -> AgentSettings:
    """Flags > environment > config file > defaults → validated AgentSettings, or ConfigError."""
    args = agent_arg_parser().parse_args(argv)
    path, path_source = config_path(args.config, env)
    overrides = env_overrides(env, AGENT_ENV) + flag_overrides([
        ("--node-id", "agent.node_id", args.node_id),
        ("--control-plane", "agent.control_plane", args.control_plane),
        ("--log-level", "logging.level", args.log_level),
        ("--addr", "agent.addr", args.addr),
    ])
    if args.control_plane is not None:
        overrides.append(Override("agent.control_planes", [], "--control-plane"))
    settings, raw = load_layered(AgentSettings, path, path_source, overrides)
    return _derive(settings, raw)
