"""The two processes as an operator meets them: config errors, health/readiness/metrics, the node the
agent registers, and the `plasmavmc` CLI against the real server (one VM booted through it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.types.node import NodeState
from plasmavmc.types.vm import HypervisorType
from tests.conftest import Cluster, needs_qemu

BIN = Path(sys.executable).parent


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(
    ("prog", "toml", "named"),
    [
        ("server", '[store]\nbackend = "sqlite"\nfoo = 1\n', "store.foo"),
        ("server", '[server]\naddr = "nowhere"\n', "server.addr"),
        ("server", '[logging]\nlevel = "loud"\n', "logging.level"),
        ("agent", '[agent]\ncontrol_plane = "http://127.0.0.1:1"\n', "agent.node_id"),
        ("agent", '[agent]\nnode_id = "n1"\n[hypervisors.kvm]\nqemu_pth = "/x"\n', "hypervisors.kvm.qemu_pth"),
    ],
)
def test_bad_config_exits_non_zero_naming_the_key(tmp_path: Path, prog: str, toml: str, named: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLASMAVMC_")}
    proc = subprocess.run(
        [sys.executable, "-m", f"plasmavmc.{prog}.main", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr
    assert "config error" in proc.stderr


def test_health_ready_and_metrics(cluster: Cluster) -> None:
    with urllib.request.urlopen(f"{cluster.http}/health", timeout=5) as resp:
        assert json.load(resp)["status"] == "ok"
    with urllib.request.urlopen(f"{cluster.http}/ready", timeout=5) as resp:
        body = json.load(resp)
    assert body["store"] == "ok" and cluster.node_id in body["agents_online"]
    with urllib.request.urlopen(f"{cluster.http}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for metric in ("plasmavmc_vms_total", "plasmavmc_vm_operations_total", "plasmavmc_node_capacity_vcpus"):
        assert metric in text


async def test_agent_registers_its_node_with_real_capacity(client: PlasmaClient, cluster: Cluster) -> None:
    node = await client.get_node(cluster.node_id)
    assert node.state == NodeState.READY
    assert node.capacity.vcpus == os.cpu_count()
    meminfo = Path("/proc/meminfo").read_text().split()
    assert node.capacity.memory_mib == int(meminfo[meminfo.index("MemTotal:") + 1]) // 1024
    assert node.capacity.storage_gib > 0
    assert node.hypervisors == (HypervisorType.KVM,)
    assert node.accelerator in ("tcg", "kvm")
    assert node.last_heartbeat > 0 and node.agent_address


@needs_qemu
def test_cli_end_to_end(cluster: Cluster) -> None:
    cli = [str(BIN / "plasmavmc"), "--addr", f"http://{cluster.api}", "--org", "cli-org", "--project", "cli-proj"]
    created = run([*cli, "vm", "create", "cli-1", "--image", "plasmavmc-tiny", "--start", "--wait", "120"])
    assert created.returncode == 0, created.stderr
    listed = run([*cli, "-o", "json", "vm", "list"])
    assert listed.returncode == 0, listed.stderr
    (vm,) = json.loads(listed.stdout)
    assert vm["name"] == "cli-1" and vm["state"] == "running" and vm["node_id"] == cluster.node_id
    table = run([*cli, "vm", "list"])
    assert "cli-1" in table.stdout and "RUNNING" in table.stdout
    deadline_runs = 0
    while deadline_runs < 300:  # poll the console with a deadline for the guest's readiness line
        console = run([*cli, "vm", "console", "cli-1", "--no-follow"])
        if f"PLASMAVMC-READY name=cli-1 id={vm['id']}" in console.stdout:
            break
        deadline_runs += 1
    else:
        raise AssertionError(f"no readiness line: {console.stdout[-500:]}")
    assert run([*cli, "vm", "stop", "cli-1"]).returncode == 0
    assert run([*cli, "vm", "delete", "cli-1"]).returncode == 0
    missing = run([*cli, "vm", "get", "cli-1"])
    assert missing.returncode == 1
    assert "VM_NOT_FOUND" in missing.stderr
    nodes = run([*cli, "node", "list"])
    assert cluster.node_id in nodes.stdout
    images = run([*cli, "image", "list"])
    assert "plasmavmc-tiny" in images.stdout


def test_ready_is_503_without_agents(tmp_path: Path, guest_dir: Path) -> None:
    from tests.conftest import Proc, write_configs

    server_cfg, _, _, http, _ = write_configs(tmp_path, guest_dir, "lonely")
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(server_cfg)], tmp_path / "s.log")
    server.start()
    try:
        for _ in range(300):  # poll with a deadline until the HTTP side answers
            try:
                urllib.request.urlopen(f"{http}/ready", timeout=1)
            except urllib.error.HTTPError as err:
                assert err.code == 503
                assert json.load(err)["agents_online"] == []
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server never answered /ready")
    finally:
        server.stop()


def test_the_server_applies_its_gc_policy_at_start_up(tmp_path: Path, guest_dir: Path) -> None:
    """Once start-up's loading is done the server froze what it keeps (`server/gc_policy.py`), and it
    times its collector's passes."""
    from tests.conftest import Proc, write_configs

    server_cfg, _, _, http, _ = write_configs(tmp_path, guest_dir, "gc")
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(server_cfg)], tmp_path / "s.log")
    server.start()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # poll with a deadline until the policy has settled
            try:
                with urllib.request.urlopen(f"{http}/metrics", timeout=5) as resp:
                    text = resp.read().decode()
            except OSError:
                text = ""
            frozen = [line for line in text.splitlines() if line.startswith("plasmavmc_gc_frozen_objects ")]
            if frozen and float(frozen[0].split()[1]) > 10_000:  # the imported modules at least
                assert 'plasmavmc_gc_pause_seconds_count{generation="2"}' in text
                return
            time.sleep(0.1)
        raise AssertionError(f"the server never froze its start-up objects:\n{server.log.read_text()[-2000:]}")
    finally:
        server.stop()


def test_the_agent_freezes_its_start_up_objects(cluster: Cluster) -> None:
    """A serving agent froze what start-up made (`gcpauses.freeze_alive`): its collector's full passes
    walk only what came after, not the modules and grpc (one such pass took ~39 ms on its loop)."""
    with urllib.request.urlopen(f"{cluster.agent_http}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    frozen = [line for line in text.splitlines() if line.startswith("plasmavmc_gc_frozen_objects ")]
    assert frozen and float(frozen[0].split()[1]) > 10_000, frozen  # the imported modules at least
    assert 'plasmavmc_gc_pause_seconds_count{generation="2"}' in text  # its passes are timed
