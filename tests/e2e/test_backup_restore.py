"""`plasmavmc-server backup` under a create load, restored into a fresh server: every VM acknowledged
before the backup began is there, and the restored server runs normally (SIMULATED agents)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

from plasmavmc.client import PlasmaClient
from plasmavmc.types.node import NodeCapacity
from tests import binaries
from tests.e2e.simulated import SIM, sim_cluster, sim_spec
from tests.etcd import EtcdCluster

NODES = [("sim-1", NodeCapacity(4096, 4194304, 100000), {}), ("sim-2", NodeCapacity(4096, 4194304, 100000), {})]


async def _server_cmd(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.server.main", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _create_load(client: PlasmaClient, worker: int, acked: list[str], stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        vm = await client.create_vm(f"load-{worker}-{n}", "org-b", "proj-b", sim_spec(), SIM)
        acked.append(vm.id)


async def test_backup_under_load_restores_every_acknowledged_vm(tmp_path: Path, guest_dir: Path) -> None:
    backup = tmp_path / "state.backup"
    acked: list[str] = []
    (tmp_path / "old").mkdir()
    async with sim_cluster(tmp_path / "old", guest_dir, NODES) as c:
        stop = asyncio.Event()
        load = [asyncio.create_task(_create_load(c.client, w, acked, stop)) for w in range(4)]
        while len(acked) < 20:  # the load is running
            await asyncio.sleep(0.05)  # polling the load's progress; bounded by the test timeout
        before = set(acked)
        code, out = await _server_cmd("backup", str(backup), "-c", str(c.root / "server.toml"))
        assert code == 0 and "backed up" in out, out
        while len(acked) < len(before) + 10:  # creates went on during and after the backup
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*load)
        code, out = await _server_cmd("backup", str(backup), "-c", str(c.root / "server.toml"))
        assert code == 1 and "--force" in out  # never over an existing file
    new = tmp_path / "new"
    # the image store is backed up on its own (a local dir is copied; S3 has its own tools): see docs/operator.md
    shutil.copytree(tmp_path / "old" / "images", new / "images")
    cfg = new / "restore.toml"
    cfg.write_text(f'[store]\nbackend = "sqlite"\npath = "{new}/state.db"\n')
    code, out = await _server_cmd("restore", str(backup), "-c", str(cfg))
    assert code == 0 and "restored" in out, out
    async with sim_cluster(new, guest_dir, NODES) as fresh:
        restored = {vm.id for vm in await fresh.client.list_all_vms("org-b", "proj-b")}
        assert before <= restored, f"lost {len(before - restored)} acknowledged VMs"
        assert restored <= set(acked)
        vm = await fresh.client.create_vm("after-restore", "org-b", "proj-b", sim_spec(), SIM)
        assert (await fresh.client.get_vm("org-b", "proj-b", vm.id)).name == "after-restore"


@binaries.require("etcd", "etcdctl")
async def test_etcd_backup_is_a_snapshot(tmp_path: Path) -> None:
    etcd = await asyncio.to_thread(EtcdCluster.start, tmp_path / "etcd")
    try:
        cfg = tmp_path / "server.toml"
        cfg.write_text(f'[store]\nbackend = "etcd"\nchainfire_endpoints = ["{etcd.endpoints[0]}"]\n')
        code, out = await _server_cmd("backup", str(tmp_path / "etcd.snap"), "-c", str(cfg))
        assert code == 0 and "etcd snapshot" in out, out
        status = await asyncio.create_subprocess_exec(
            "etcdctl", "snapshot", "status", str(tmp_path / "etcd.snap"), "-w", "json",
            env={**os.environ, "ETCDCTL_API": "3"}, stdout=asyncio.subprocess.PIPE,
        )
        report, _ = await asyncio.wait_for(status.communicate(), 60)
        assert status.returncode == 0 and json.loads(report)["totalKey"] >= 0
        code, out = await _server_cmd("restore", str(tmp_path / "etcd.snap"), "-c", str(cfg))
        assert code == 0 and "etcdctl snapshot restore" in out and "nothing was changed" in out
    finally:
        await asyncio.to_thread(etcd.stop)
