"""The `plasmavmc` CLI for quotas and nodes, run as a real process against a server with SIMULATED agents."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from plasmavmc.types.node import NodeCapacity
from tests.e2e.simulated import SIM, NodeSpec, sim_cluster, sim_spec


async def cli(api: str, *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "plasmavmc.cli",
        "--addr",
        api,
        "--org",
        "org-c",
        "--project",
        "proj-c",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def cli_json(api: str, *argv: str) -> Any:
    code, out, err = await cli(api, "-o", "json", *argv)
    assert code == 0, err
    return json.loads(out)


async def test_quota_and_node_commands(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [("sim-1", NodeCapacity(8, 65536, 1000), {}), ("sim-2", NodeCapacity(8, 65536, 1000), {})]
    async with sim_cluster(tmp_path, guest_dir, specs) as c:
        quota = await cli_json(c.api, "quota", "set", "--max-vms", "1", "--max-vcpus", "4")
        assert quota["limits"]["max_vms"] == 1 and quota["limits"]["max_memory_gib"] is None
        await c.client.create_vm("one", "org-c", "proj-c", sim_spec(vcpus=2), SIM)
        code, out, _ = await cli(c.api, "quota", "get")
        assert code == 0 and "vms" in out and "unlimited" in out
        assert (await cli_json(c.api, "quota", "get"))["usage"]["vcpus"] == 2
        assert (await cli_json(c.api, "quota", "get", "--org-wide"))["usage"]["vms"] == 1
        code, _, err = await cli(c.api, "vm", "create", "two", "--image", "plasmavmc-tiny", "--hypervisor", "simulated")
        assert code != 0 and "max_vms" in err
        code, _, err = await cli(c.api, "quota", "set", "--max-vms", "-1")
        assert code != 0 and "must not be negative" in err

        assert (await cli_json(c.api, "node", "cordon", "sim-2"))["state"] == "cordoned"
        assert (await cli_json(c.api, "node", "uncordon", "sim-2"))["state"] == "ready"
        drained = await cli_json(c.api, "node", "drain", "sim-2", "--allow-disk-loss")
        assert drained["state"] == "draining"
        assert any(cond["type"] == "Drain" for cond in drained["conditions"])
