"""End to end over gRPC and the CLI with a real server and agent running Firecracker (jailed).

The cluster seeds the PVH test guest as image `plasmavmc-pvh` (kernel `plasmavmc-pvh-kernel`, a tiny raw
disk) next to the default guest and enables `["kvm", "firecracker"]` on its agent. A VM of hypervisor
FIRECRACKER is created, started (the guest's ready line comes through GetConsole), stopped and deleted
through the API, then the same through the `plasmavmc` CLI; a spec Firecracker cannot run is refused
with the feature named and leaves no VM behind. RunVm (a spec extension) creates, starts and streams the
console in one call (one agent call too), and refuses bad input as CreateVm does, changing nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import AlreadyExists, InvalidArgument, PlasmaError, VmNotFound
from plasmavmc.hypervisor.process import is_running
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import DiskBus, DiskSource, DiskSpec, HypervisorType, MemorySpec, VirtualMachine, VmSpec
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc
from tests import binaries
from tests import firecracker_guest as fc
from tests.conftest import Cluster, kill_leftover_qemu, start_cluster
from tests.e2e.helpers import ORG, PROJECT, console_until, until

pytestmark = [binaries.require(*fc.BINARIES),
              pytest.mark.skipif(fc.capability_missing() is not None, reason=str(fc.capability_missing()))]
IMAGE = "plasmavmc-pvh"
AGENT_RPC = re.compile(r'plasmavmc_grpc_server_handled_total\{[^}]*method="(?P<method>\w+)"[^}]*\} '
                       r'(?P<value>[0-9.e+]+)')


def pvh_spec(bus: DiskBus = DiskBus.VIRTIO) -> VmSpec:
    return VmSpec(memory=MemorySpec(size_mib=64),
                  disks=(DiskSpec(id="root", source=DiskSource(image_id=IMAGE), size_gib=1, bus=bus),))


def running_cluster(root: Path, guest_dir: Path, server_extra: str = "") -> Iterator[Cluster]:
    """A server and agent with Firecracker enabled, ended with every hypervisor process they started."""
    cluster = start_cluster(root, guest_dir, firecracker=True, server_extra=server_extra)
    try:
        yield cluster
    finally:
        cluster.agent.stop()
        cluster.server.stop()
        fc.kill_leftovers(root)
        kill_leftover_qemu(root)


@pytest.fixture(scope="module")
def fc_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    yield from running_cluster(tmp_path_factory.mktemp("fc-cluster"), guest_dir)


@pytest.fixture
async def fc_client(fc_cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(fc_cluster.api) as c:
        yield c


async def test_create_start_console_stop_delete(fc_client: PlasmaClient, fc_cluster: Cluster) -> None:
    vm = await fc_client.create_vm("fc-1", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER)
    assert vm.hypervisor is HypervisorType.FIRECRACKER and vm.node_id == fc_cluster.node_id
    vm = await fc_client.wait_for_state(ORG, PROJECT, vm.id, {VmState.STOPPED}, 30)
    running = await fc_client.start_vm(ORG, PROJECT, vm.id)
    assert running.state is VmState.RUNNING
    pid = running.status.host_pid
    assert pid and is_running(pid)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0] == b"/firecracker" and vm.id.encode() in cmdline  # the jailed binary, this VM
    await console_until(fc_client, vm.id, fc.READY_LINE_RE, timeout=30)
    stopped = await fc_client.stop_vm(ORG, PROJECT, vm.id)
    stopped = await fc_client.wait_for_state(ORG, PROJECT, vm.id, {VmState.STOPPED}, 30)
    assert stopped.state is VmState.STOPPED and not is_running(pid)
    await console_until(fc_client, vm.id, "ctrl-alt-del", timeout=10)  # stop was the guest's soft power-off
    await fc_client.delete_vm(ORG, PROJECT, vm.id)
    runtime = fc_cluster.root / "run" / "fc" / vm.id
    with pytest.raises(VmNotFound):
        await fc_client.wait_for_state(ORG, PROJECT, vm.id, {VmState.DELETED}, 30)
    assert not runtime.exists()


async def test_create_with_start_is_one_agent_call_in_a_pooled_firecracker(
        fc_client: PlasmaClient, fc_cluster: Cluster) -> None:
    """CreateVm with `start`: RUNNING on return, through one agent CreateVm (no StartVm, no status call:
    the agent's RPC counters say so), in a Firecracker of the agent's warm pool (launched jailed before
    the call; configured over its API, then InstanceStart: its log says so), the boot timeline in order."""
    pooled = await fc.pool_ready(fc_cluster.root / "run" / "fc")
    before = agent_calls(fc_cluster)
    vm = await fc_client.create_vm("fc-fast", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER,
                                   start=True)
    after = agent_calls(fc_cluster)
    assert vm.state is VmState.RUNNING and vm.status.host_pid and is_running(vm.status.host_pid)
    assert after.get("CreateVm", 0) - before.get("CreateVm", 0) == 1
    for method in ("StartVm", "GetVmStatus"):
        assert after.get(method, 0) == before.get(method, 0), method
    assert vm.status.host_pid in pooled, (vm.status.host_pid, pooled)
    cmdline = Path(f"/proc/{vm.status.host_pid}/cmdline").read_bytes().split(b"\0")
    assert b"--config-file" not in cmdline and cmdline[0] == b"/firecracker"
    await console_until(fc_client, vm.id, fc.READY_LINE_RE, timeout=30)
    log = next((fc_cluster.root / "run" / "fc" / vm.id).glob("jail/*/*/root/firecracker.log")).read_text()
    assert "InstanceStart" in log and '"/machine-config"' in log, log
    boot = vm.status.boot
    assert 0 < boot.accepted_at <= boot.placed_at <= boot.image_ready_at <= boot.start_requested_at
    assert boot.start_requested_at - 2 <= boot.process_up_at  # node clock: within the tolerated slack
    await fc_client.delete_vm(ORG, PROJECT, vm.id, force=True)


async def test_run_vm_streams_the_console_and_the_running_vm_in_one_agent_call(
        fc_client: PlasmaClient, fc_cluster: Cluster) -> None:
    """RunVm: the guest's output as it comes (its ready line may come before the VM is recorded) and the VM,
    RUNNING, once; every byte once and in order (the stream's output is the console's history up to the
    line); with no GetConsole and one agent call (RunVm: no CreateVm or StartVm on the agent); closing the
    stream ends the console, not the VM."""
    await fc.pool_ready(fc_cluster.root / "run" / "fc")
    before = agent_calls(fc_cluster)
    run = fc_client.run_vm("fc-run", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER)
    vm, seen = await until_vm(run)
    assert vm.state is VmState.RUNNING, vm
    assert vm.status.host_pid and is_running(vm.status.host_pid)
    async with asyncio.timeout(30):
        while not re.search(fc.READY_LINE_RE, seen.decode(errors="replace")):
            chunk = await anext(run)
            assert isinstance(chunk, bytes), chunk  # one VM message only
            seen += chunk
    await run.aclose()

    async def counted() -> bool:  # a stream is counted when it ends: the agent hears of the close after us
        return agent_calls(fc_cluster).get("RunVm", 0) - before.get("RunVm", 0) >= 1

    await until(counted, "the agent's RunVm ended")
    after = agent_calls(fc_cluster)
    assert after.get("RunVm", 0) - before.get("RunVm", 0) == 1
    # (StreamConsole is not compared: a stream is counted when it ends, and the previous test's console
    # stream may end on the agent while this one runs)
    for method in ("CreateVm", "StartVm", "GetVmStatus"):
        assert after.get(method, 0) == before.get(method, 0), method
    assert (await fc_client.get_vm(ORG, PROJECT, vm.id)).state is VmState.RUNNING  # it runs on
    history = (await console_until(fc_client, vm.id, fc.READY_LINE_RE, timeout=30)).encode()  # there for others
    assert _to_line(seen) == _to_line(history), (seen, history)
    await fc_client.delete_vm(ORG, PROJECT, vm.id, force=True)


async def test_run_vm_streams_closed_at_any_point_leave_the_processes_up(
        fc_client: PlasmaClient, fc_cluster: Cluster) -> None:
    """A RunVm stream its client closes at its first message (output or the VM: the create finishes all the
    same, the VM RUNNING), once output came, or that ends because the VM was deleted meanwhile: every VM
    is there (or gone) as asked, and server and agent keep running (a client-closed mutating stream used
    to let the audit read the call's peer after grpc had freed it: a segfault of the server, about one
    RunVm in fifty)."""
    for i in range(12):
        name = f"fc-close-{i}"
        run = fc_client.run_vm(name, ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER)
        if i % 3 == 0:
            async with asyncio.timeout(30):
                await anext(run)
            await run.aclose()

            async def recorded(name: str = name) -> bool:
                found = [v for v in await fc_client.list_all_vms(ORG, PROJECT) if v.name == name]
                return bool(found) and found[0].state is VmState.RUNNING

            await until(recorded, f"VM {name} RUNNING after its RunVm was closed at the first message")
            vm = await fc_client.get_vm(ORG, PROJECT, name)
        else:
            vm, seen = await until_vm(run)
            assert vm.state is VmState.RUNNING, vm
            if i % 3 == 1 and not seen:
                async with asyncio.timeout(30):
                    assert isinstance(await anext(run), bytes)
            if i % 3 == 2:
                await fc_client.delete_vm(ORG, PROJECT, vm.id, force=True)
                async with asyncio.timeout(30):
                    async for _ in run:  # the node's console ends with its VM: so does the stream
                        pass
            await run.aclose()
        if i % 3 != 2:
            assert (await fc_client.get_vm(ORG, PROJECT, vm.id)).state is VmState.RUNNING
            await fc_client.delete_vm(ORG, PROJECT, vm.id, force=True)
        for process in (fc_cluster.server, fc_cluster.agent):
            assert process.popen is not None and process.popen.poll() is None, (i, process.argv)
    assert not [v for v in await fc_client.list_all_vms(ORG, PROJECT) if v.name.startswith("fc-close-")]


async def test_agent_deletes_of_one_vm_at_once_all_succeed(fc_client: PlasmaClient, fc_cluster: Cluster) -> None:
    """The control plane may ask a node to delete one VM twice at once (a DeleteVm and the leader finishing
    that delete): every call succeeds and the VM is gone (the second used to fail INTERNAL on a KeyError)."""
    vm = await fc_client.create_vm("fc-twice", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER,
                                   start=True)
    addr = tomllib.loads((fc_cluster.root / "agent.toml").read_text())["agent"]["addr"]
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        await asyncio.gather(*(stub.DeleteVm(agent_pb2.DeleteVmRequest(vm_id=vm.id)) for _ in range(3)))
    assert not (fc_cluster.root / "run" / "fc" / vm.id).exists()
    assert not is_running(vm.status.host_pid or 0)
    await fc_client.delete_vm(ORG, PROJECT, vm.id, force=True)  # the record goes too


async def until_vm(run: AsyncIterator[VirtualMachine | bytes]) -> tuple[VirtualMachine, bytes]:
    """RunVm's stream read until the VM came: the VM and the output that came before it."""
    seen = b""
    async with asyncio.timeout(30):
        async for item in run:
            if isinstance(item, VirtualMachine):
                return item, seen
            seen += item
    raise AssertionError(f"RunVm ended without the VM; output: {seen!r}")


def _to_line(output: bytes) -> bytes:
    """`output` up to the end of the guest's ready line."""
    return output[:output.index(fc.READY) + len(fc.READY)]


async def test_run_vm_refuses_bad_input_and_changes_nothing(fc_client: PlasmaClient) -> None:
    taken = await fc_client.create_vm("fc-taken", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER)
    before = sorted((v.id, v.state) for v in await fc_client.list_all_vms(ORG, PROJECT))
    bad: list[tuple[str, VmSpec, type[PlasmaError], str]] = [
        ("Not A Name!", pvh_spec(), InvalidArgument, "name"),
        ("fc-scsi-run", pvh_spec(DiskBus.SCSI), InvalidArgument, "scsi"),
        ("fc-taken", pvh_spec(), AlreadyExists, "name"),
    ]
    for name, spec, error, named in bad:
        with pytest.raises(error) as err:
            async for _ in fc_client.run_vm(name, ORG, PROJECT, spec, hypervisor=HypervisorType.FIRECRACKER):
                raise AssertionError(f"RunVm {name!r} answered")
        assert named in f"{err.value.field} {err.value.message}".lower(), err.value
    assert sorted((v.id, v.state) for v in await fc_client.list_all_vms(ORG, PROJECT)) == before
    await fc_client.delete_vm(ORG, PROJECT, taken.id, force=True)


def agent_calls(cluster: Cluster) -> dict[str, float]:
    """The agent's handled-RPC counters by method, from its /metrics."""
    with urllib.request.urlopen(f"{cluster.agent_http}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    calls: dict[str, float] = {}
    for line in text.splitlines():
        if match := AGENT_RPC.match(line):
            calls[match["method"]] = calls.get(match["method"], 0) + float(match["value"])
    return calls


async def test_unsupported_spec_is_refused_naming_the_feature(fc_client: PlasmaClient) -> None:
    with pytest.raises(InvalidArgument) as err:
        await fc_client.create_vm("fc-scsi", ORG, PROJECT, pvh_spec(DiskBus.SCSI),
                                  hypervisor=HypervisorType.FIRECRACKER)
    assert "scsi" in err.value.message.lower() or "disk_bus" in err.value.message, err.value
    names = [v.name for v in await fc_client.list_all_vms(ORG, PROJECT)]
    assert "fc-scsi" not in names


def cli(cluster: Cluster, *args: str) -> str:
    argv = [sys.executable, "-m", "plasmavmc.cli", "--addr", cluster.api, "--org", ORG, "--project", PROJECT,
            "-o", "json", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def test_cli_create_start_console_delete(fc_cluster: Cluster) -> None:
    created = json.loads(cli(fc_cluster, "vm", "create", "fc-cli", "--image", IMAGE, "--memory-mib", "64",
                             "--hypervisor", "firecracker", "--start", "--wait", "60"))
    assert created["state"] == "running" and created["hypervisor"] == "firecracker", created
    console = subprocess.run(
        [sys.executable, "-m", "plasmavmc.cli", "--addr", fc_cluster.api, "--org", ORG, "--project", PROJECT,
         "vm", "console", "fc-cli", "--no-follow"], capture_output=True, timeout=60, check=False)
    assert fc.READY in console.stdout, console
    stopped = json.loads(cli(fc_cluster, "vm", "stop", "fc-cli", "--wait", "60"))
    assert stopped["state"] == "stopped", stopped
    cli(fc_cluster, "vm", "delete", "fc-cli")
    assert "fc-cli" not in cli(fc_cluster, "vm", "list")


async def test_agent_killed_and_restarted_loses_no_vm(fc_client: PlasmaClient, fc_cluster: Cluster) -> None:
    """SIGKILL the agent under a running Firecracker VM: the VM runs on, the new agent re-adopts it and
    the API drives it again (stop, delete) — no VM lost, no process orphaned."""
    vm = await fc_client.create_vm("fc-adopt", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER)
    running = await fc_client.start_vm(ORG, PROJECT, vm.id)
    pid = running.status.host_pid
    assert pid and is_running(pid)
    fc_cluster.agent.kill(signal.SIGKILL)
    assert is_running(pid), "the VM must outlive its agent"
    fc_cluster.agent.start()
    deadline = asyncio.get_running_loop().time() + 60
    while True:  # poll-with-deadline: the restarted agent takes a moment to serve
        try:
            await fc_client.stop_vm(ORG, PROJECT, vm.id)
            break
        except PlasmaError as exc:
            if not exc.retryable or asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"stop after agent restart: {exc}\n{fc_cluster.logs()}") from exc
            await asyncio.sleep(0.2)
    stopped = await fc_client.wait_for_state(ORG, PROJECT, vm.id, {VmState.STOPPED}, 30)
    assert stopped.state is VmState.STOPPED and not is_running(pid)
    await fc_client.delete_vm(ORG, PROJECT, vm.id)
    assert not (fc_cluster.root / "run" / "fc" / vm.id).exists()


async def test_reset_and_reboot_replace_the_process_and_keep_the_vm_running(fc_client: PlasmaClient) -> None:
    """Firecracker cannot reset in place: a reset (kill, then start) and a reboot (Ctrl-Alt-Del, then start)
    each give the VM a new process; the API answers RUNNING with the new pid, and the record is RUNNING
    after each; when the new process dies, the VM leaves RUNNING with the reason."""
    vm = await fc_client.create_vm("fc-reset", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER)
    pid = (await fc_client.start_vm(ORG, PROJECT, vm.id)).status.host_pid
    for operation in (fc_client.reset_vm, fc_client.reboot_vm):
        after = await operation(ORG, PROJECT, vm.id)
        assert after.state is VmState.RUNNING and after.status.host_pid not in (None, pid), after.status
        assert pid is not None and not is_running(pid)
        pid = after.status.host_pid
        await console_until(fc_client, vm.id, fc.READY_LINE_RE, timeout=30)
        assert (await fc_client.get_vm(ORG, PROJECT, vm.id)).state is VmState.RUNNING
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the new process dies: its end is reported
    ended = await fc_client.wait_for_state(ORG, PROJECT, vm.id, {VmState.STOPPED, VmState.ERROR}, 30)
    assert ended.status.last_error, ended.status
    await fc_client.delete_vm(ORG, PROJECT, vm.id)
