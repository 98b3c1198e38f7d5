"""The `plasmavmc` CLI's habits, run as a real process against a real server with SIMULATED agents:
global flags anywhere, every output format and column selection, list filters, name-or-id, bounded
`--wait`, `-` for stdout, no overwrite without `--force`, completion scripts bash accepts, profiles,
partial `quota set`, NO_SUITABLE_NODE naming the config key, a drain that cannot move a VM failing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from plasmavmc.types.node import NodeCapacity
from plasmavmc.types.states import VmState
from tests.e2e.simulated import SimCluster, sim_cluster

ENV = {k: v for k, v in os.environ.items() if not k.startswith("PLASMAVMC_") and k != "NO_COLOR"}


async def run(c: SimCluster, *argv: str, env: dict[str, str] | None = None,
              stdin: bytes | None = None) -> tuple[int, bytes, str]:
    environ = {**ENV, "PLASMAVMC_ENDPOINT": c.api, "PLASMAVMC_CLI_CONFIG": str(c.root / "none.toml"), **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.cli", *argv, env=environ, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


async def ok(c: SimCluster, *argv: str, env: dict[str, str] | None = None) -> str:
    code, out, err = await run(c, *argv, env=env)
    assert code == 0, f"{argv}: {err}"
    return out.decode()


async def js(c: SimCluster, *argv: str) -> Any:
    return json.loads(await ok(c, *argv, "-o", "json"))


async def test_cli_habits(tmp_path: Path, guest_dir: Path) -> None:
    async with sim_cluster(tmp_path, guest_dir, [("sim-1", NodeCapacity(2, 8192, 100), {})]) as c:
        await _flags_formats_filters(c)
        await _images(c, tmp_path)
        await _completion_and_profiles(c, tmp_path)
        await _quota_and_scheduler_hints(c)
        await _stop_wait_bound(c)
        await _drain_that_cannot_move(c)


async def _flags_formats_filters(c: SimCluster) -> None:
    # global flags after the subcommand (and the image by name)
    web = await js(c, "vm", "create", "web-1", "--image", "plasmavmc-tiny", "--hypervisor", "simulated",
                   "--label", "tier=web", "--start", "--wait", "30", "--project", "p1")
    assert web["state"] == "running" and web["project_id"] == "p1"
    db = await js(c, "--project", "p1", "vm", "create", "db-1", "--image", "plasmavmc-tiny",
                  "--hypervisor", "simulated", "--label", "tier=db", "--wait", "30")
    assert db["state"] == "stopped"
    table = await ok(c, "vm", "list", "--project", "p1")
    assert table.splitlines()[0].split()[:3] == ["ID", "NAME", "STATE"] and len(table.splitlines()) == 3
    assert {v["name"] for v in yaml.safe_load(await ok(c, "vm", "list", "-o", "yaml", "--project", "p1"))} == {
        "web-1", "db-1"}
    assert (await ok(c, "vm", "list", "--project", "p1", "-o", "value", "-c", "name", "--state", "RUNNING")
            ).split() == ["web-1"]
    assert (await ok(c, "vm", "list", "--project", "p1", "-o", "value", "-c", "NAME", "--label", "tier=db")
            ).split() == ["db-1"]
    assert (await ok(c, "vm", "list", "--project", "p1", "-o", "value", "-c", "name", "--node", "nowhere")) == ""
    picked = await js(c, "vm", "get", "web-1", "--project", "p1", "-c", "id", "-c", "state")
    assert picked == {"id": web["id"], "state": "running"}
    code, _, err = await run(c, "vm", "list", "-c", "colour")
    assert code == 2 and "-c colour: no such column" in err
    details = await ok(c, "vm", "get", web["id"], "--project", "p1")
    assert "Conditions:" in details and "\x1b[" not in details  # no color when stdout is not a terminal
    assert (await js(c, "node", "get", "sim-1"))["id"] == "sim-1"
    everywhere = (await ok(c, "vm", "list", "--all-projects", "-o", "value", "-c", "project", "-c", "name")
                  ).splitlines()
    assert sorted(everywhere) == ["p1 db-1", "p1 web-1"]
    on_node = sorted((await ok(c, "node", "vms", "sim-1", "-o", "value", "-c", "name")).split())
    placed = sorted(v["name"] for v in await js(c, "vm", "list", "--project", "p1") if v["node_id"] == "sim-1")
    assert "web-1" in on_node and on_node == placed


async def _images(c: SimCluster, tmp_path: Path) -> None:
    image = await js(c, "image", "get", "plasmavmc-tiny")
    code, raw, err = await run(c, "image", "download", image["id"], "-")
    assert code == 0 and len(raw) == image["size_bytes"], err
    target = tmp_path / "tiny.img"
    target.write_bytes(b"keep me")
    code, _, err = await run(c, "image", "download", image["name"], str(target))
    assert code == 1 and "--force" in err and target.read_bytes() == b"keep me"
    await ok(c, "image", "download", image["name"], str(target), "--force")
    assert target.stat().st_size == image["size_bytes"]
    assert not list(tmp_path.glob(".tiny.img.partial"))


async def _completion_and_profiles(c: SimCluster, tmp_path: Path) -> None:
    script = tmp_path / "plasmavmc.bash"
    script.write_text(await ok(c, "completion", "bash"))
    await asyncio.to_thread(subprocess.run, ["bash", "-n", str(script)], check=True, timeout=30)
    sourced = await asyncio.to_thread(subprocess.run, ["bash", "-c", f"source {script} && complete -p plasmavmc"],
                                      check=True, capture_output=True, text=True, timeout=30)
    shown = sourced.stdout
    assert "plasmavmc" in shown
    assert "compdef" in (await ok(c, "completion", "zsh")) or "#compdef" in (await ok(c, "completion", "zsh"))
    assert "complete -c plasmavmc" in await ok(c, "completion", "fish")
    profile = tmp_path / "config.toml"
    profile.write_text(f'default_cloud = "broken"\n[clouds.broken]\nendpoints = ["127.0.0.1:1"]\n'
                       f'[clouds.lab]\nendpoints = ["{c.api}"]\nproject = "p1"\noutput = "json"\n')
    env = {"PLASMAVMC_CLI_CONFIG": str(profile)}
    env.pop("PLASMAVMC_ENDPOINT", None)
    lab = await run(c, "vm", "list", "--cloud", "lab", env={**env, "PLASMAVMC_ENDPOINT": ""})
    assert lab[0] == 0 and {v["name"] for v in json.loads(lab[1])} == {"web-1", "db-1"}, lab[2]
    via_env = await run(c, "vm", "list", env={**env, "PLASMAVMC_ENDPOINT": "", "PLASMAVMC_CLOUD": "lab"})
    assert via_env[0] == 0 and len(json.loads(via_env[1])) == 2
    code, _, err = await run(c, "vm", "list", "--cloud", "nosuch", env=env)
    assert code == 2 and "'nosuch'" in err and "lab" in err


async def _quota_and_scheduler_hints(c: SimCluster) -> None:
    await js(c, "quota", "set", "--max-vms", "10", "--max-vcpus", "8", "--project", "p2")
    after = await js(c, "quota", "set", "--max-vcpus", "4", "--project", "p2")
    assert after["limits"]["max_vms"] == 10 and after["limits"]["max_vcpus"] == 4
    cleared = await js(c, "quota", "set", "--unset", "vms", "--project", "p2")
    assert cleared["limits"]["max_vms"] is None and cleared["limits"]["max_vcpus"] == 4
    code, _, err = await run(c, "quota", "set", "--project", "p2")
    assert code == 2 and "nothing to change" in err
    code, _, err = await run(c, "quota", "set", "--max-vms", "1", "--project", "p2", "-o", "json", "-c", "bogus")
    assert code == 2 and "bogus" in err  # refused before anything was sent: the limit is unchanged
    assert (await js(c, "quota", "get", "--project", "p2"))["limits"]["max_vms"] is None
    code, _, err = await run(c, "vm", "create", "big", "--image", "plasmavmc-tiny", "--hypervisor", "simulated",
                             "--vcpus", "3", "--start", "--wait", "30", "--project", "p2")
    assert code == 1 and "NO_SUITABLE_NODE" in err and "cpu_overcommit_ratio" in err, err


async def _stop_wait_bound(c: SimCluster) -> None:
    """`vm stop --wait` returns when its wait runs out, while the stop itself still runs on the server."""
    vm = await c.client.get_vm("default", "p1", "web-1")
    backend = c.fleet.backends["sim-1"]
    backend.ignores_acpi.add(vm.id)  # the guest ignores the power button: the server-side stop takes 600 s
    code, _, err = await run(c, "vm", "stop", "web-1", "--project", "p1", "--timeout", "600", "--wait", "0.5")
    assert code == 1 and "still STOPPING after 0.5s" in err, err
    assert (await c.client.get_vm("default", "p1", vm.id)).state is VmState.STOPPING  # returned before the stop ended
    backend.ignores_acpi.discard(vm.id)
    backend.power_off(vm.id)  # the guest gives in: the stop that went on finishes
    stopped = await c.client.wait_for_state("default", "p1", vm.id, {VmState.STOPPED}, 60)
    assert stopped.state is VmState.STOPPED
    await ok(c, "vm", "start", "web-1", "--project", "p1", "--wait", "30")


async def _drain_that_cannot_move(c: SimCluster) -> None:
    code, _, err = await run(c, "node", "drain", "sim-1", "--allow-disk-loss", "--wait", "30", "-o", "json")
    assert code == 1, err
    assert "web-1" in err and "no node other than sim-1" in err and "no nodes are registered" not in err
    vm = await c.client.get_vm("default", "p1", "web-1")
    assert vm.state is VmState.RUNNING and vm.node_id == "sim-1"  # not stopped: it had nowhere to go
