"""The boot timeline of a real QEMU boot: every step stamped, in order, summing to the create -> ready
time the client observes; shown by `vm get` (CLI) and in the API."""

from __future__ import annotations

import asyncio
import re
import sys
import time

from plasmavmc.client import PlasmaClient
from tests.conftest import Cluster, needs_qemu
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec

pytestmark = needs_qemu
STEPS = ["placed", "image_ready", "start_requested", "process_up", "first_output", "ready"]


async def _stored_ready(client: PlasmaClient, vm_id: str, timeout: float) -> float:
    async with asyncio.timeout(timeout):
        while (vm := await client.get_vm(ORG, PROJECT, vm_id)).status.boot.ready_at <= 0:
            await asyncio.sleep(0.1)
    return vm.status.boot.ready_at


async def test_boot_timeline_of_a_qemu_boot(cluster: Cluster, client: PlasmaClient) -> None:
    began = time.time()
    vm = await client.create_vm("boot-1", ORG, PROJECT, tiny_spec())
    await client.start_vm(ORG, PROJECT, vm.id)
    await console_until(client, vm.id, "PLASMAVMC-READY name=boot-1 ", timeout=120)
    seen = time.time()
    await _stored_ready(client, vm.id, 30)
    boot = (await client.get_vm(ORG, PROJECT, vm.id)).status.boot

    steps = boot.steps()
    assert [name for name, _ in steps] == STEPS, boot
    assert all(seconds >= 0 for _, seconds in steps), steps
    assert began <= boot.accepted_at
    total = sum(seconds for _, seconds in steps)
    assert abs(total - (boot.ready_at - boot.accepted_at)) < 1e-6
    # the client's own create -> readiness-line time: the agent and the client's console stream follow the
    # same console log, but the client's copy comes through the server, so it sees the line a little later
    # (up to a second or so on a loaded machine), never much earlier
    observed = seen - began
    assert boot.ready_at <= seen + 0.5, (boot.ready_at, seen)
    assert abs(total - observed) < max(1.0, 0.05 * observed), (total, observed, steps)

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.cli", "--addr", cluster.api, "--org", ORG, "--project", PROJECT,
        "vm", "get", "boot-1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    line = next(line for line in out.decode().splitlines() if line.startswith("Last boot"))
    assert re.findall(r"(\w+) \+\d+\.\d\ds", line) == STEPS, line
    await client.delete_vm(ORG, PROJECT, vm.id, force=True)
