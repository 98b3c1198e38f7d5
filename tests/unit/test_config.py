"""Configuration: spec §9 keys, validation messages naming the key, precedence, entry-point exit codes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from plasmavmc.config import (
    AgentSettings,
    ConfigError,
    ServerSettings,
    parse_agent_args,
    parse_server_args,
    settings_or_exit,
    setup_logging,
    split_addr,
)

# Spec §9.1 verbatim, including its Cyrillic misprint of "lightningstor".
SPEC_SERVER_TOML = """
[server]
addr = "0.0.0.0:8080"

[server.tls]
cert_file = "/etc/plasmavmc/tls/server.crt"
key_file = "/etc/plasmavmc/tls/server.key"
ca_file = "/etc/plasmavmc/tls/ca.crt"

[store]
backend = "chainfire"
chainfire_endpoints = ["http://chainfire-1:2379", "http://chainfire-2:2379"]

[iam]
endpoint = "http://aegis:9090"
service_account = "plasmavmc-controller"
token_path = "/var/run/secrets/iam/token"

[scheduler]
default_hypervisor = "kvm"

[image_store]
backend = "lightningst\u043e\u0440"
endpoint = "http://lightningstor:9000"
bucket = "vm-images"

[logging]
level = "info"
format = "json"
"""

SPEC_AGENT_TOML = """
[agent]
node_id = "node-001"
control_plane = "http://plasmavmc-api:8080"

[agent.tls]
cert_file = "/etc/plasmavmc/tls/agent.crt"
key_file = "/etc/plasmavmc/tls/agent.key"
ca_file = "/etc/plasmavmc/tls/ca.crt"

[hypervisors]
enabled = ["kvm", "firecracker"]

[hypervisors.kvm]
qemu_path = "/usr/bin/qemu-system-x86_64"
runtime_dir = "/var/run/plasmavmc/kvm"

[hypervisors.firecracker]
fc_path = "/usr/bin/firecracker"
jailer_path = "/usr/bin/jailer"
runtime_dir = "/var/run/plasmavmc/fc"

[storage]
image_cache_dir = "/var/lib/plasmavmc/images"
runtime_dir = "/var/lib/plasmavmc/vms"
cache_size_gib = 100

[network]
overlay_endpoint = "http://ovn-controller:6641"
bridge_name = "plasmavmc0"

[logging]
level = "info"
format = "json"
"""

EXT_SERVER_TOML = """
[server]
metrics_addr = "127.0.0.1:9181"
[store]
backend = "etcd"
endpoints = ["https://[::1]:2379"]
path = "/tmp/state.db"
[store.tls]
ca_file = "/etc/ca.crt"
cert_file = "/etc/c.crt"
key_file = "/etc/c.key"
[image_store]
backend = "s3"
endpoint = "https://s3.example.com"
path = "/srv/images"
seed_dirs = ["/srv/seed", "/srv/seed2"]
access_key = "AK"
secret_key = "SK"
region = "eu-1"
[agents]
heartbeat_timeout_seconds = 30
"""

EXT_AGENT_TOML = """
[agent]
node_id = "n1"
control_planes = ["http://cp-1:8080", "http://cp-2:8080"]
addr = "10.0.0.5:8082"
advertise_addr = "node1.example:8082"
heartbeat_interval_seconds = 2
labels = { rack = "r1", "topology/zone" = "z1" }
[hypervisors]
enabled = ["mvisor", "simulated"]
[hypervisors.kvm]
qemu_img_path = "qemu-img"
accel = "tcg"
[hypervisors.mvisor]
mvisor_path = "/opt/mvisor/bin/mvisor"
runtime_dir = "/run/mv"
"""


@pytest.fixture
def write(tmp_path: Path) -> Iterator[Callable[..., str]]:
    def _write(text: str, name: str = "plasmavmc.toml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    yield _write


def server(text: str, tmp_path: Path, argv: list[str] | None = None,
           env: dict[str, str] | None = None) -> ServerSettings:
    path = tmp_path / "server.toml"
    path.write_text(text, encoding="utf-8")
    return parse_server_args(["-c", str(path), *(argv or [])], env or {})


def agent(text: str, tmp_path: Path, argv: list[str] | None = None,
          env: dict[str, str] | None = None) -> AgentSettings:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return parse_agent_args(["-c", str(path), *(argv or [])], env or {})


def problems_of(fn: Callable[..., object], *args: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    return info.value.problems


# ------------------------------------------------------------------ defaults and spec keys


def test_server_defaults() -> None:
    s = parse_server_args([], {})
    assert s.server.addr == "0.0.0.0:8080"
    assert s.server.metrics_addr == "0.0.0.0:8081"
    assert s.server.tls is None
    assert (s.store.backend, s.store.etcd_endpoints) == ("sqlite", ())
    assert s.store.path == "/var/lib/plasmavmc/state.db"
    assert s.scheduler.default_hypervisor == "kvm"
    assert (s.image_store.backend, s.image_store.bucket) == ("local", "vm-images")
    assert s.image_store.path == "/var/lib/plasmavmc/images"
    assert (s.logging.level, s.logging.format) == ("info", "json")
    assert s.agents.heartbeat_timeout_seconds == 15


def test_agent_defaults() -> None:
    a = parse_agent_args(["-n", "node-1"], {})
    assert a.agent.node_id == "node-1"
    assert a.agent.control_plane == "http://127.0.0.1:8080"
    assert a.agent.control_planes == ("http://127.0.0.1:8080",)
    assert (a.agent.addr, a.agent.advertise_addr) == ("0.0.0.0:8082", "127.0.0.1:8082")
    assert a.agent.heartbeat_interval_seconds == 5
    assert a.hypervisors.enabled == ("kvm",)
    assert a.hypervisors.kvm.accel == "auto"
    assert a.storage.image_cache_dir == "/var/lib/plasmavmc/image-cache"
    assert a.storage.cache_size_gib == 100
    assert a.network.bridge_name == "plasmavmc0"


def test_spec_server_example_is_accepted(tmp_path: Path) -> None:
    s = server(SPEC_SERVER_TOML, tmp_path)
    assert s.store.backend == "etcd"  # chainfire is an alias
    assert s.store.etcd_endpoints == ("http://chainfire-1:2379", "http://chainfire-2:2379")
    assert s.server.tls is not None and s.server.tls.mutual
    assert s.iam.service_account == "plasmavmc-controller"
    assert s.image_store.backend == "s3"  # lightningstor (misprinted) is an alias


def test_spec_agent_example_is_accepted(tmp_path: Path) -> None:
    a = agent(SPEC_AGENT_TOML, tmp_path)
    assert a.agent.node_id == "node-001"
    assert a.agent.control_planes == ("http://plasmavmc-api:8080",)
    assert a.agent.tls is not None and a.agent.tls.key_file == "/etc/plasmavmc/tls/agent.key"
    assert a.hypervisors.enabled == ("kvm", "firecracker")
    assert a.hypervisors.firecracker.jailer_path == "/usr/bin/jailer"
    assert a.network.overlay_endpoint == "http://ovn-controller:6641"


def test_extension_keys_are_accepted(tmp_path: Path) -> None:
    s = server(EXT_SERVER_TOML, tmp_path)
    assert s.store.etcd_endpoints == ("https://[::1]:2379",)
    assert s.store.tls is not None and s.store.tls.key_file == "/etc/c.key"
    assert s.image_store.seed_dirs == ("/srv/seed", "/srv/seed2")
    assert s.agents.heartbeat_timeout_seconds == 30
    a = agent(EXT_AGENT_TOML, tmp_path)
    assert a.agent.control_planes == ("http://cp-1:8080", "http://cp-2:8080")
    assert a.agent.control_plane == "http://cp-1:8080"
    assert a.agent.advertise_addr == "node1.example:8082"
    assert a.agent.labels == {"rack": "r1", "topology/zone": "z1"}
    assert a.hypervisors.enabled == ("mvisor", "simulated")
    assert a.hypervisors.kvm.accel == "tcg"


@pytest.mark.parametrize(
    ("addr", "advertised"),
    [("0.0.0.0:9000", "127.0.0.1:9000"), ("[::]:9000", "[::1]:9000"), ("10.1.2.3:9000", "10.1.2.3:9000")],
)
def test_agent_advertise_addr_default(addr: str, advertised: str) -> None:
    assert parse_agent_args(["-n", "n", "--addr", addr], {}).agent.advertise_addr == advertised


def test_agent_control_plane_and_control_planes_merge(tmp_path: Path) -> None:
    text = '[agent]\nnode_id = "n"\ncontrol_plane = "http://a:1"\ncontrol_planes = ["http://b:1", "http://a:1"]\n'
    assert agent(text, tmp_path).agent.control_planes == ("http://a:1", "http://b:1")
    flagged = agent(text, tmp_path, ["--control-plane", "http://c:1"])
    assert flagged.agent.control_planes == ("http://c:1",)


# ------------------------------------------------------------------ problems name the key


@pytest.mark.parametrize(
    ("which", "text", "problem"),
    [
        ("server", "[store]\nfoo = 1\n", "unknown key 'store.foo'"),
        ("server", "[nope]\n", "unknown key 'nope'"),
        ("server", "[server.tls]\ncert_file='/a'\nkey_file='/b'\ncrt='/c'\n", "unknown key 'server.tls.crt'"),
        ("agent", '[agent]\nnode_id="n"\n[hypervisors.kvm]\nqemu_pth = "/x"\n',
         "unknown key 'hypervisors.kvm.qemu_pth'"),
        ("agent", '[agent]\nnode_id="n"\n[hypervisors.simulated]\n', "unknown key 'hypervisors.simulated'"),
    ],
)
def test_unknown_keys_are_named(tmp_path: Path, which: str, text: str, problem: str) -> None:
    fn = server if which == "server" else agent
    assert problem in problems_of(fn, text, tmp_path)


@pytest.mark.parametrize(
    ("which", "text", "problem"),
    [
        ("server", "[server]\naddr = 8080\n", "'server.addr': expected a string, got integer"),
        ("server", "server = 5\n", "'server': expected a table, got integer"),
        ("server", "[store]\nchainfire_endpoints = 'http://a:1'\n",
         "'store.chainfire_endpoints': expected an array, got string"),
        ("server", "[store]\nendpoints = [1]\n", "'store.endpoints[0]': expected a string, got integer"),
        ("server", "[agents]\nheartbeat_timeout_seconds = 1.5\n",
         "'agents.heartbeat_timeout_seconds': expected an integer, got float"),
        ("agent", '[agent]\nnode_id="n"\n[storage]\ncache_size_gib = "100"\n',
         "'storage.cache_size_gib': expected an integer, got string"),
        ("agent", '[agent]\nnode_id="n"\n[storage]\ncache_size_gib = true\n',
         "'storage.cache_size_gib': expected an integer, got boolean"),
        ("agent", '[agent]\nnode_id="n"\nlabels = { a = 1 }\n',
         "'agent.labels.a': expected a string, got integer"),
        ("agent", '[agent]\nnode_id="n"\ntls = "yes"\n', "'agent.tls': expected a table, got string"),
    ],
)
def test_wrong_types_are_named(tmp_path: Path, which: str, text: str, problem: str) -> None:
    fn = server if which == "server" else agent
    assert problem in problems_of(fn, text, tmp_path)


@pytest.mark.parametrize(
    "addr",
    ["localhost", ":8080", "host:0", "host:65536", "host:http", "::1:8080", "[zz]:80", "[::1:80",
     "bad host:80"],
)
def test_bad_addresses(addr: str) -> None:
    [problem] = problems_of(parse_server_args, ["--addr", addr], {})
    assert problem.startswith("'server.addr' (from --addr): ")


@pytest.mark.parametrize(
    "addr", ["0.0.0.0:8080", "[::1]:8080", "[::]:1", "localhost:65535", "api.example:80"]
)
def test_good_addresses(addr: str) -> None:
    assert parse_server_args(["-a", addr], {}).server.addr == addr


def test_split_addr() -> None:
    assert split_addr("[::1]:8080") == ("::1", 8080)
    assert split_addr("example.com:1") == ("example.com", 1)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://cp:8080", True), ("https://[::1]:8080", True), ("http://cp", True),
        ("http://cp:8080/", True),
        ("ftp://cp:21", False), ("http://", False), ("http://cp:8080/api", False), ("cp:8080", False),
        ("http://cp:99999", False), ("http://u:p@cp:1", False),
    ],
)
def test_urls(url: str, ok: bool) -> None:
    argv = ["-n", "n", "--control-plane", url]
    if ok:
        assert parse_agent_args(argv, {}).agent.control_plane == url
    else:
        [problem] = problems_of(parse_agent_args, argv, {})
        assert problem.startswith("'agent.control_plane' (from --control-plane): ")


@pytest.mark.parametrize(
    ("which", "text", "key"),
    [
        ("server", "[logging]\nlevel = 'loud'\n", "logging.level"),
        ("server", "[logging]\nformat = 'xml'\n", "logging.format"),
        ("server", "[store]\nbackend = 'mysql'\n", "store.backend"),
        ("server", "[image_store]\nbackend = 'ftp'\n", "image_store.backend"),
        ("server", "[image_store]\nbucket = 'Bad_Bucket'\n", "image_store.bucket"),
        ("server", "[scheduler]\ndefault_hypervisor = 'xen'\n", "scheduler.default_hypervisor"),
        ("server", "[store]\npath = 'state.db'\n", "store.path"),
        ("server", "[iam]\ntoken_path = 'token'\n", "iam.token_path"),
        ("server", "[agents]\nheartbeat_timeout_seconds = 0\n", "agents.heartbeat_timeout_seconds"),
        ("server", "[server.tls]\nkey_file = '/k'\nca_file = '/ca'\n", "server.tls.cert_file"),
        ("server", "[store.tls]\ncert_file = '/c'\n", "store.tls.key_file"),
        ("server", "[agents.tls]\ncert_file = '/c'\nkey_file = '/k'\n", "agents.tls.ca_file"),
        ("server", "[image_store]\nbackend = 's3'\n", "image_store.endpoint"),
        ("agent", "[agent]\nnode_id = 'Node_1'\n", "agent.node_id"),
        ("agent", "[agent]\nnode_id = 'n'\nlabels = { '-x' = 'y' }\n", "agent.labels"),
        ("agent", "[agent]\nnode_id = 'n'\n[hypervisors]\nenabled = []\n", "hypervisors.enabled"),
        ("agent", "[agent]\nnode_id = 'n'\n[hypervisors]\nenabled = ['kvm', 'xen']\n", "hypervisors.enabled"),
        ("agent", "[agent]\nnode_id = 'n'\n[hypervisors.kvm]\naccel = 'hvf'\n", "hypervisors.kvm.accel"),
        ("agent", "[agent]\nnode_id = 'n'\n[hypervisors.kvm]\nqemu_path = 'bin/qemu'\n",
         "hypervisors.kvm.qemu_path"),
        ("agent", "[agent]\nnode_id = 'n'\n[storage]\ncache_size_gib = -1\n", "storage.cache_size_gib"),
        ("agent", "[agent]\nnode_id = 'n'\n[network]\nbridge_name = 'a-very-long-bridge-name'\n",
         "network.bridge_name"),
        ("agent", "[agent]\nnode_id = 'n'\n[network]\noverlay_endpoint = 'tcp:h'\n", "network.overlay_endpoint"),
        ("agent", "[agent]\nnode_id = 'n'\n[network]\novs_endpoint = 'db.sock'\n", "network.ovs_endpoint"),
        ("agent", "[agent]\nnode_id = 'n'\n[network]\nexternal_cidr = '10.1.2.3/33'\n", "network.external_cidr"),
        ("agent", "[agent]\nnode_id = 'n'\n[network]\nexternal_gateway = 'gw'\n", "network.external_gateway"),
        ("agent", "[agent]\nnode_id = 'n'\n[network]\nunderlay_address = '10.0.0'\n", "network.underlay_address"),
        ("agent", "[agent]\nnode_id = 'n'\n[network]\nunderlay_address = '0.0.0.0'\n", "network.underlay_address"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, which: str, text: str, key: str) -> None:
    fn = server if which == "server" else agent
    problems = problems_of(fn, text, tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"'{key}': ")


def test_ovn_keys_are_accepted(tmp_path: Path) -> None:
    a = agent("[agent]\nnode_id = 'n'\n[network]\nprovider = 'ovn'\noverlay_endpoint = 'tcp:10.0.0.5:6641'\n"
              "ovs_endpoint = 'unix:/run/ovs/db.sock'\nexternal_cidr = '198.51.100.0/24'\n"
              "external_gateway = '198.51.100.1'\n", tmp_path)
    assert (a.network.provider, a.network.overlay_endpoint) == ("ovn", "tcp:10.0.0.5:6641")
    assert a.network.external_cidr == "198.51.100.0/24" and a.network.integration_bridge == "br-int"


def test_underlay_address_is_read(tmp_path: Path) -> None:
    assert agent("[agent]\nnode_id = 'n'\n", tmp_path).network.underlay_address == ""
    a = agent("[agent]\nnode_id = 'n'\n[network]\nunderlay_address = '192.0.2.7'\n", tmp_path)
    assert a.network.underlay_address == "192.0.2.7"


def test_log_level_spellings_are_accepted() -> None:
    for level in ("trace", "debug", "info", "warn", "warning", "error", "INFO"):
        assert parse_server_args(["-l", level], {}).logging.level == level.lower()


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "[server]\naddr = 1\nfoo = 2\n[store]\nbackend = 'etcd'\n[logging]\nlevel = 'x'\nformat = 'y'\n"
    problems = problems_of(server, text, tmp_path)
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    for key in ("server.addr", "server.foo", "store.chainfire_endpoints", "logging.level", "logging.format"):
        assert key in joined


def test_etcd_without_endpoints_is_an_error(tmp_path: Path) -> None:
    for backend in ("etcd", "chainfire"):
        [problem] = problems_of(server, f"[store]\nbackend = '{backend}'\n", tmp_path)
        assert problem.startswith("'store.chainfire_endpoints': backend 'etcd' needs at least one endpoint")
    ok = server("[store]\nbackend = 'etcd'\nendpoints = ['http://e:2379']\n", tmp_path)
    assert ok.store.etcd_endpoints == ("http://e:2379",)


def test_agent_without_node_id_is_an_error(tmp_path: Path) -> None:
    [problem] = problems_of(parse_agent_args, [], {})
    assert problem.startswith("'agent.node_id': required")
    assert "PLASMAVMC_NODE_ID" in problem and "--node-id" in problem
    assert agent("[agent]\nnode_id = 'from-file'\n", tmp_path).agent.node_id == "from-file"


# ------------------------------------------------------------------ precedence


def test_server_precedence_cli_env_file_default(tmp_path: Path) -> None:
    text = "[server]\naddr = '127.0.0.1:1001'\n[logging]\nlevel = 'debug'\n"
    env = {"PLASMAVMC_ADDR": "127.0.0.1:1002", "PLASMAVMC_LOG_LEVEL": "warn"}
    assert parse_server_args([], {}).server.addr == "0.0.0.0:8080"
    assert server(text, tmp_path).server.addr == "127.0.0.1:1001"
    from_env = server(text, tmp_path, env=env)
    assert (from_env.server.addr, from_env.logging.level) == ("127.0.0.1:1002", "warn")
    from_cli = server(text, tmp_path, ["-a", "127.0.0.1:1003", "-l", "error"], env)
    assert (from_cli.server.addr, from_cli.logging.level) == ("127.0.0.1:1003", "error")
    assert server(text, tmp_path, env={"PLASMAVMC_ADDR": ""}).server.addr == "127.0.0.1:1001"


def test_agent_precedence_for_node_id(tmp_path: Path) -> None:
    text = "[agent]\nnode_id = 'file'\n"
    assert agent(text, tmp_path).agent.node_id == "file"
    assert agent(text, tmp_path, env={"PLASMAVMC_NODE_ID": "env"}).agent.node_id == "env"
    assert agent(text, tmp_path, ["-n", "cli"], {"PLASMAVMC_NODE_ID": "env"}).agent.node_id == "cli"


def test_agent_ignores_server_addr_variable() -> None:
    assert parse_agent_args(["-n", "n"], {"PLASMAVMC_ADDR": "1.2.3.4:5"}).agent.addr == "0.0.0.0:8082"


def test_config_path_from_env_and_flag(write: Callable[..., str]) -> None:
    env_file = write("[server]\naddr = '127.0.0.1:2001'\n", "env.toml")
    cli_file = write("[server]\naddr = '127.0.0.1:2002'\n", "cli.toml")
    env = {"PLASMAVMC_CONFIG": env_file}
    assert parse_server_args([], env).server.addr == "127.0.0.1:2001"
    assert parse_server_args(["--config", cli_file], env).server.addr == "127.0.0.1:2002"


@pytest.mark.parametrize(
    ("variable", "key"), [("PLASMAVMC_ADDR", "server.addr"), ("PLASMAVMC_LOG_LEVEL", "logging.level")]
)
def test_bad_env_value_names_the_variable(variable: str, key: str) -> None:
    [problem] = problems_of(parse_server_args, [], {variable: "nonsense"})
    assert problem.startswith(f"'{key}' (from {variable}): ")


def test_bad_node_id_from_env_names_the_variable() -> None:
    [problem] = problems_of(parse_agent_args, [], {"PLASMAVMC_NODE_ID": "Bad Id"})
    assert problem.startswith("'agent.node_id' (from PLASMAVMC_NODE_ID): ")


# ------------------------------------------------------------------ files


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    [problem] = problems_of(parse_server_args, ["-c", missing], {})
    assert missing in problem and "not found" in problem
    [problem] = problems_of(parse_agent_args, [], {"PLASMAVMC_CONFIG": missing})
    assert missing in problem and "PLASMAVMC_CONFIG" in problem


def test_toml_syntax_error_names_the_file(write: Callable[..., str]) -> None:
    path = write("[server\naddr = \n")
    [problem] = problems_of(parse_server_args, ["-c", path], {})
    assert path in problem and "invalid TOML" in problem and "line 1" in problem


# ------------------------------------------------------------------ entry-point behaviour


def test_settings_or_exit_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\naddr = 'nowhere'\n[store]\nfoo = 1\n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        settings_or_exit(parse_server_args, ["-c", str(path)], {}, "plasmavmc-server")
    assert info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("plasmavmc-server: config error: ") for line in lines)
    assert any("'server.addr'" in line for line in lines)
    assert any("'store.foo'" in line for line in lines)


def test_settings_or_exit_agent_missing_node_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        settings_or_exit(parse_agent_args, [], {}, "plasmavmc-agent")
    assert info.value.code == 2
    assert "plasmavmc-agent: config error: 'agent.node_id': required" in capsys.readouterr().err


def test_settings_or_exit_returns_settings() -> None:
    s = settings_or_exit(parse_server_args, ["-a", "127.0.0.1:1"], {}, "plasmavmc-server")
    assert s.server.addr == "127.0.0.1:1"


@pytest.mark.parametrize("fn", [parse_server_args, parse_agent_args])
@pytest.mark.parametrize("flag", ["-h", "--help", "-V", "--version"])
def test_help_and_version_exit_0(
    fn: Callable[[list[str], Mapping[str, str]], object], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        settings_or_exit(fn, [flag], {}, "prog")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert ("usage:" in out) if flag in ("-h", "--help") else out.startswith("plasmavmc-")


# ------------------------------------------------------------------ logging


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_logging_one_object_per_line() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    setup_logging("info", "json", stream)  # idempotent: still one handler
    log = logging.getLogger("plasmavmc.test")
    log.debug("hidden")
    log.info("hello %s", "world", extra={"vm_id": "v1"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    lines = stream.getvalue().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 2
    assert first["level"] == "info" and first["logger"] == "plasmavmc.test"
    assert first["msg"] == "hello world" and first["vm_id"] == "v1" and first["ts"].endswith("Z")
    second = json.loads(lines[1])
    assert second["level"] == "error" and "RuntimeError: boom" in second["exc"]


@pytest.mark.usefixtures("restore_root_logger")
def test_text_logging_and_trace_level() -> None:
    stream = io.StringIO()
    setup_logging("trace", "text", stream)
    logging.getLogger("plasmavmc.x").log(5, "wire")
    assert stream.getvalue().rstrip().endswith("TRACE plasmavmc.x: wire")
    with pytest.raises(ValueError):
        setup_logging("loud", "text", stream)


@pytest.mark.parametrize(("key", "default", "good", "bad"), [
    ("warm_pool", 2, 0, ("-1", "65")),
    ("guest_cpu_weight", 10, 100, ("0", "10001", '"low"')),
    ("guest_slice_us", 100, 0, ("99", "100001", "-1", '"short"')),
    ("vmm_cpu_percent", 50, 0, ("-1", "1001", '"half"')),
])
def test_firecracker_int_keys(tmp_path: Path, key: str, default: int, good: int, bad: tuple[str, ...]) -> None:
    node = '[agent]\nnode_id = "n1"\n'
    assert getattr(agent(node, tmp_path).hypervisors.firecracker, key) == default
    fc = agent(f"{node}[hypervisors.firecracker]\n{key} = {good}\n", tmp_path).hypervisors.firecracker
    assert getattr(fc, key) == good
    for value in bad:
        problems = problems_of(agent, f"{node}[hypervisors.firecracker]\n{key} = {value}\n", tmp_path)
        assert any(key in p for p in problems), problems
