"""Client fail-over: three server replicas on one real etcd; a `PlasmaClient` (and the CLI) given all
three endpoints keeps working when the replica it used is killed -9, and then the next one too, and
says which endpoint answered. A change whose connection dropped mid-call is not resent (it may have
been applied)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plasmavmc.cli.main import main
from plasmavmc.client import ConnectionFailed, PlasmaClient
from plasmavmc.client.base import Rpc, resendable
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.v1 import vm_pb2_grpc
from tests.e2e.helpers import health_ok
from tests.e2e.test_ha_failover import HaCluster
from tests.etcd import EtcdCluster, needs_etcd

pytestmark = needs_etcd
DEADLINE = 60.0


@pytest.fixture
def three(guest_dir: Path) -> Iterator[HaCluster]:
    """Three replicas started at once (they seed the same image concurrently, which must be fine)."""
    root = Path(tempfile.mkdtemp(prefix="plasmavmc-fo-"))
    cluster = HaCluster(root, guest_dir, EtcdCluster.start(root / "etcd"))
    try:
        replicas = [cluster.start_replica(name) for name in ("a", "b", "c")]
        deadline = time.monotonic() + DEADLINE
        while not all(health_ok(r.http) for r in replicas):
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.1)  # polling external processes, with a deadline
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_client_keeps_working_when_its_replica_dies(three: HaCluster) -> None:
    replicas = three.replicas
    addrs = [f"http://{replicas[name].api}" for name in ("a", "b", "c")]
    async with await PlasmaClient.connect(addrs) as client:
        await client.set_quota("org-f", "p", ResourceLimits(max_vms=1))
        assert client.answered_by == addrs[0]
        for victim in ("a", "b"):
            used = client.answered_by
            replicas[victim].proc.kill()
            for n in range(2, 5):  # every call answered, by a live replica
                quota = await client.set_quota("org-f", "p", ResourceLimits(max_vms=n))
                assert quota.limits.max_vms == n
                assert (await client.get_quota("org-f", "p")).limits.max_vms == n
                assert client.answered_by not in (used, addrs[0])
        assert client.answered_by == addrs[2]


async def test_cli_takes_endpoints_and_says_which_answered(
    three: HaCluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    replicas = three.replicas
    replicas["a"].proc.kill()
    monkeypatch.delenv("PLASMAVMC_ADDR", raising=False)
    monkeypatch.setenv("PLASMAVMC_ENDPOINTS", f"http://{replicas['a'].api},http://{replicas['b'].api}")
    assert await asyncio.to_thread(main, ["-v", "--org", "org-c", "quota", "get"]) == 0
    assert f"answered by http://{replicas['b'].api}" in capsys.readouterr().err
    # the flag wins over the env; repeated and comma lists mix
    argv = ["-v", "--endpoint", f"{replicas['a'].api},{replicas['a'].api}", "--endpoint", replicas["c"].api,
            "--org", "org-c", "quota", "get"]
    assert await asyncio.to_thread(main, argv) == 0
    assert f"answered by {replicas['c'].api}" in capsys.readouterr().err
    config = three.root / "client.toml"
    config.write_text(f'endpoints = ["{replicas["a"].api}", "{replicas["b"].api}"]\n')
    monkeypatch.delenv("PLASMAVMC_ENDPOINTS")
    assert await asyncio.to_thread(main, ["-v", "--config", str(config), "--org", "org-c", "quota", "get"]) == 0
    assert f"answered by {replicas['b'].api}" in capsys.readouterr().err
    config.write_text('endpoints = "not a list"\n')
    assert await asyncio.to_thread(main, ["--config", str(config), "quota", "get"]) == 1
    assert "expected only `endpoints" in capsys.readouterr().err


def test_only_reads_or_never_sent_calls_are_resent() -> None:
    refused = ConnectionFailed("h:1", "failed to connect to all addresses; last error: Connection refused")
    dropped = ConnectionFailed("h:1", "Socket closed")
    create, get = Rpc(vm_pb2_grpc.VmServiceStub, "CreateVm"), Rpc(vm_pb2_grpc.VmServiceStub, "GetVm")
    assert resendable(create, refused) and resendable(get, refused) and resendable(get, dropped)
    assert not resendable(create, dropped)  # it may have been applied: resending could answer falsely
