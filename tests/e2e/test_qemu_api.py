"""QEMU features end to end through the real server and agent: the WebSocket console gateway (serial
and VNC, CLI included), hot-plug seen from inside the guest, snapshots, and usage counters in GetVm."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
from collections.abc import AsyncIterator

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import open_console
from plasmavmc.errors import InvalidArgument, PlasmaError
from plasmavmc.hypervisor.qemu.cmdline import tap_name
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import BootSpec, DiskSpec, NetworkSpec, VirtualMachine
from tests.conftest import Cluster, needs_qemu
from tests.contract.backends import read_until, run
from tests.e2e.helpers import ORG, PROJECT, WsStream, console_until, tiny_spec

pytestmark = needs_qemu


@pytest.fixture(scope="module")
async def q35(client: PlasmaClient) -> AsyncIterator[VirtualMachine]:
    spec = dataclasses.replace(tiny_spec(), boot=BootSpec(machine_type="q35"))
    vm = await client.create_vm("api-q35", ORG, PROJECT, spec)
    await client.start_vm(ORG, PROJECT, vm.id)
    await console_until(client, vm.id, "PLASMAVMC-READY name=api-q35 ", timeout=120)
    yield vm
    await client.delete_vm(ORG, PROJECT, vm.id, force=True)


@pytest.fixture(scope="module")
async def shell(cluster: Cluster, q35: VirtualMachine) -> AsyncIterator[WsStream]:
    stream = WsStream(await open_console(cluster.console, ORG, PROJECT, q35.id))
    yield stream
    await stream.close()


async def test_websocket_console_types_and_replays(cluster: Cluster, q35: VirtualMachine, shell: WsStream) -> None:
    assert "ws-42" in await run(shell, "echo ws-$((6*7))")
    again = WsStream(await open_console(cluster.console, ORG, PROJECT, "api-q35"))  # by name, a 2nd session
    try:
        await read_until(again, b"ws-42", bytearray(), 20)  # the history survived the reconnect
    finally:
        await again.close()


async def test_vnc_through_the_gateway(cluster: Cluster, q35: VirtualMachine) -> None:
    vnc = WsStream(await open_console(cluster.console, ORG, PROJECT, q35.id, "vnc"))
    try:
        await read_until(vnc, re.compile(rb"RFB 003\.00\d\n"), bytearray(), 20)
    finally:
        await vnc.close()


async def test_gateway_refuses_bad_requests(cluster: Cluster) -> None:
    with pytest.raises(PlasmaError, match="404"):
        await open_console(cluster.console, ORG, PROJECT, "no-such-vm")
    with pytest.raises(PlasmaError, match="400"):
        await open_console(cluster.console, ORG, PROJECT, "api-q35", "telnet")


async def test_cli_interactive_console(cluster: Cluster, q35: VirtualMachine) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.cli", "--addr", cluster.api, "--org", ORG, "--project", PROJECT,
        "vm", "console", "-i", "--gateway", cluster.console, "api-q35",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    seen = b""
    async with asyncio.timeout(60):
        while b"cli-42" not in seen:
            proc.stdin.write(b"echo cli-$((6*7))\n")
            await proc.stdin.drain()
            try:
                async with asyncio.timeout(3):
                    while b"cli-42" not in seen:
                        seen += await proc.stdout.read(4096)
            except TimeoutError:
                pass
        proc.stdin.write(b"\x1d")  # Ctrl-] ends the session
        await proc.stdin.drain()
        assert await proc.wait() == 0, (await proc.stderr.read() if proc.stderr else b"")


async def test_usage_counters_in_getvm(client: PlasmaClient, q35: VirtualMachine, shell: WsStream) -> None:
    await run(shell, "dd if=/dev/zero of=/usage bs=64k count=16 && sync")
    async with asyncio.timeout(30):  # refreshed by the agent's heartbeats
        while True:
            usage = (await client.get_vm(ORG, PROJECT, q35.id)).status.resource_usage
            if usage.memory_used_mib > 0 and usage.disk_write_bytes >= 1024 * 1024 and usage.cpu_percent > 0:
                break
            await asyncio.sleep(0.5)  # polling the API, bounded by the deadline


async def test_hotplug_through_the_api(client: PlasmaClient, q35: VirtualMachine, shell: WsStream) -> None:
    vm = await client.attach_disk(ORG, PROJECT, q35.id, DiskSpec(id="data", size_gib=1))
    assert [d.id for d in vm.spec.disks] == ["root", "data"]
    await _until(shell, "ls /sys/block", lambda out: "vdb" in out.split())
    assert "hotplug" in await run(shell, "echo hotplug | dd of=/dev/vdb conv=fsync 2>/dev/null; "
                                         "dd if=/dev/vdb bs=7 count=1 2>/dev/null")
    vm = await client.detach_disk(ORG, PROJECT, q35.id, "data")
    assert [d.id for d in vm.spec.disks] == ["root"]
    await _until(shell, "ls /sys/block", lambda out: "vdb" not in out.split())

    before = set((await run(shell, "ls /sys/class/net")).split())
    vm = await client.attach_nic(ORG, PROJECT, q35.id, NetworkSpec(id="net1"))
    assert [n.id for n in vm.spec.network] == ["net1"]
    await _until(shell, "ls /sys/class/net", lambda out: len(set(out.split()) - before) == 1)
    new = (set((await run(shell, "ls /sys/class/net")).split()) - before).pop()
    await _traffic(client, q35, shell, new)
    vm = await client.detach_nic(ORG, PROJECT, q35.id, "net1")
    assert vm.spec.network == ()
    await _until(shell, "ls /sys/class/net", lambda out: set(out.split()) == before)


async def test_snapshot_restore_through_the_api(client: PlasmaClient, q35: VirtualMachine, shell: WsStream) -> None:
    await run(shell, "echo kept > /kept && sync")
    snap = await client.snapshot_vm(ORG, PROJECT, q35.id, "api-1")
    assert snap.id == "api-1" and snap.memory and snap.disk_ids == ("root",)
    assert [s.id for s in await client.list_snapshots(ORG, PROJECT, q35.id)] == ["api-1"]
    await run(shell, "echo later > /later && sync")
    vm = await client.restore_vm(ORG, PROJECT, q35.id, "api-1")
    assert vm.state is VmState.RUNNING
    out = await run(shell, "cat /later; cat /kept")
    assert "No such file" in out and "kept" in out, out
    with pytest.raises(InvalidArgument, match="snapshot_id"):
        await client.snapshot_vm(ORG, PROJECT, q35.id, "Bad Id")
    await client.delete_snapshot(ORG, PROJECT, q35.id, "api-1")
    assert await client.list_snapshots(ORG, PROJECT, q35.id) == []


async def test_reset_through_the_api(client: PlasmaClient, q35: VirtualMachine, shell: WsStream) -> None:
    """Last in this module: it reboots the shared VM (the same QEMU process, a fresh guest)."""
    await run(shell, "echo up > /run/before-reset")
    pid = (await client.get_vm(ORG, PROJECT, q35.id)).status.host_pid
    vm = await client.reset_vm(ORG, PROJECT, q35.id)
    assert vm.state is VmState.RUNNING and vm.status.host_pid == pid  # a reset keeps the process
    await read_until(shell, b"PLASMAVMC-READY name=api-q35 ", bytearray(), 120)
    assert "No such file" in await run(shell, "cat /run/before-reset")


async def _traffic(client: PlasmaClient, vm: VirtualMachine, shell: WsStream, guest_if: str) -> None:
    """Packets the guest sends on its new NIC show in GetVm's network counters (the tap's rx side)."""
    tap = tap_name(vm.id, "net1")
    link = await asyncio.create_subprocess_exec("ip", "link", "set", tap, "up")  # QEMU leaves it down
    assert await link.wait() == 0
    await run(shell, f"ip link set {guest_if} up; ip addr add 10.77.0.2/24 dev {guest_if}; "
                     "ping -c 3 -W 1 10.77.0.1 >/dev/null 2>&1; true")  # ARP requests go out, unanswered
    async with asyncio.timeout(30):
        while (await client.get_vm(ORG, PROJECT, vm.id)).status.resource_usage.network_tx_bytes == 0:
            await asyncio.sleep(0.5)  # refreshed by heartbeats; polling bounded by the deadline


async def _until(console: WsStream, command: str, ok: object, deadline_s: float = 60.0) -> None:
    assert callable(ok)
    out = ""
    try:
        async with asyncio.timeout(deadline_s):
            while not ok(out := await run(console, command)):
                await asyncio.sleep(0.5)  # polling the guest, bounded by the deadline
    except TimeoutError:
        raise AssertionError(f"{command!r} never satisfied the check; last output {out!r}") from None
