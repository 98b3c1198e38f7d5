"""The `plasmavmc` CLI (and the `PlasmaClient` under it) against a tiny fake of the far side of the wire.

The fake `VmService`/`NodeService` servicer runs on a grpc.aio server in its own thread and event loop
on a free loopback port, so the CLI can be run in-process with `main(argv)` — which calls
`asyncio.run` itself — exactly as the console script runs it. The fake only stands in for the server
to test argument parsing, output formatting and error decoding; its errors go through the real
`to_grpc_status`, so what is checked here is that our error details survive a real gRPC hop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import grpc.aio
import pytest

from plasmavmc.cli.main import main
from plasmavmc.client import PlasmaClient
from plasmavmc.errors import InvalidState, NodeNotFound, PlasmaError, VmNotFound
from plasmavmc.types.events import VmEvent, VmEventType
from plasmavmc.types.image import Image
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import CpuSpec, HypervisorType, MemorySpec, VirtualMachine, VmSpec
from plasmavmc.v1 import image_pb2, image_pb2_grpc, node_pb2, node_pb2_grpc, types_pb2, vm_pb2, vm_pb2_grpc
from plasmavmc.wire.convert import from_proto, to_proto
from plasmavmc.wire.status import to_grpc_status
from tests.ports import free_port

NOW = int(time.time())


@dataclass
class FakeState:
    """What the fake holds and what it saw; reset for every test."""

    vms: dict[str, VirtualMachine] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)  # (method, request)
    metadata: list[dict[str, str]] = field(default_factory=list)
    page_size: int = 2  # small, so that `vm list` has to follow page tokens

    def requests(self, method: str) -> list[Any]:
        return [req for name, req in self.calls if name == method]


async def _fail(context: grpc.aio.ServicerContext, err: PlasmaError) -> None:
    await context.abort_with_status(to_grpc_status(err))


class FakeVms(vm_pb2_grpc.VmServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def _seen(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.s.calls.append((method, request))
        self.s.metadata.append({m.key: m.value for m in context.invocation_metadata() or ()})

    async def _find(self, ref: vm_pb2.VmRef, context: grpc.aio.ServicerContext) -> VirtualMachine:
        for vm in self.s.vms.values():
            if (vm.org_id, vm.project_id) == (ref.org_id, ref.project_id) and ref.vm_id in (vm.id, vm.name):
                return vm
        await _fail(context, VmNotFound(f"vm {ref.vm_id!r} not found", field="vm.vm_id"))
        raise AssertionError("abort returned")

    def _put(self, vm: VirtualMachine, **changes: Any) -> types_pb2.VirtualMachine:
        vm = replace(vm, **changes)
        self.s.vms[vm.id] = vm
        return to_proto(vm, types_pb2.VirtualMachine())

    async def CreateVm(self, request: vm_pb2.CreateVmRequest, context: Any) -> types_pb2.VirtualMachine:
        self._seen("CreateVm", request, context)
        vm = VirtualMachine(
            id=f"vm-{len(self.s.vms) + 1}", name=request.name, org_id=request.org_id,
            project_id=request.project_id, state=VmState.STOPPED, spec=from_proto(VmSpec, request.spec),
            node_id="node-a", created_at=NOW, labels=dict(request.labels),
        )
        return self._put(vm)

    async def GetVm(self, request: vm_pb2.GetVmRequest, context: Any) -> types_pb2.VirtualMachine:
        self._seen("GetVm", request, context)
        return to_proto(await self._find(request.vm, context), types_pb2.VirtualMachine())

    async def ListVms(self, request: vm_pb2.ListVmsRequest, context: Any) -> vm_pb2.ListVmsResponse:
        self._seen("ListVms", request, context)
        mine = [vm for vm in self.s.vms.values() if (vm.org_id, vm.project_id) == (request.org_id,
                                                                                   request.project_id)]
        start = int(request.page_token or 0)
        page = mine[start:start + self.s.page_size]
        more = start + self.s.page_size < len(mine)
        return vm_pb2.ListVmsResponse(
            vms=[to_proto(vm, types_pb2.VirtualMachine()) for vm in page],
            next_page_token=str(start + self.s.page_size) if more else "",
        )

    async def StartVm(self, request: vm_pb2.StartVmRequest, context: Any) -> types_pb2.VirtualMachine:
        self._seen("StartVm", request, context)
        vm = await self._find(request.vm, context)
        if vm.state is not VmState.STOPPED:
            await _fail(context, InvalidState(f"cannot start a VM in state {vm.state.value.upper()}"))
        return self._put(vm, state=VmState.STARTING)  # RUNNING comes later, through WatchVm

    async def StopVm(self, request: vm_pb2.StopVmRequest, context: Any) -> types_pb2.VirtualMachine:
        self._seen("StopVm", request, context)
        return self._put(await self._find(request.vm, context), state=VmState.STOPPED)

    async def DeleteVm(self, request: vm_pb2.DeleteVmRequest, context: Any) -> types_pb2.Empty:
        self._seen("DeleteVm", request, context)
        del self.s.vms[(await self._find(request.vm, context)).id]
        return types_pb2.Empty()

    async def GetConsole(self, request: vm_pb2.GetConsoleRequest, context: Any) -> AsyncIterator[Any]:
        self._seen("GetConsole", request, context)
        await self._find(request.vm, context)
        for chunk in (b"boot ok\r\n", b"\x1b[0mlogin: "):
            yield vm_pb2.ConsoleData(data=chunk)

    async def WatchVm(self, request: vm_pb2.WatchVmRequest, context: Any) -> AsyncIterator[Any]:
        """The current record; a STARTING VM then becomes RUNNING, anything else stays put."""
        self._seen("WatchVm", request, context)
        vm = await self._find(request.vm, context)
        first = VmEvent(VmEventType.INITIAL, None, vm.state, vm, revision=1, timestamp=NOW)
        yield to_proto(first, vm_pb2.VmEvent())
        if vm.state is VmState.STARTING:
            vm = replace(vm, state=VmState.RUNNING)
            self.s.vms[vm.id] = vm
            change = VmEvent(VmEventType.STATE_CHANGED, VmState.STARTING, vm.state, None, 2, NOW + 1,
                             "Started", "STARTING -> RUNNING", "alice", vm.id, "e2")
            yield to_proto(change, vm_pb2.VmEvent())


class FakeNodes(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    async def ListNodes(self, request: Any, context: Any) -> node_pb2.ListNodesResponse:
        return node_pb2.ListNodesResponse(nodes=[to_proto(n, node_pb2.Node()) for n in self.s.nodes.values()])

    async def _node(self, node_id: str, context: Any) -> Node:
        if node_id not in self.s.nodes:
            await _fail(context, NodeNotFound(f"node {node_id!r} not found", field="node_id"))
        return self.s.nodes[node_id]

    async def GetNode(self, request: node_pb2.GetNodeRequest, context: Any) -> node_pb2.Node:
        return to_proto(await self._node(request.node_id, context), node_pb2.Node())

    async def CordonNode(self, request: node_pb2.CordonNodeRequest, context: Any) -> node_pb2.Node:
        node = replace(await self._node(request.node_id, context), state=NodeState.CORDONED)
        self.s.nodes[node.id] = node
        return to_proto(node, node_pb2.Node())


class FakeImages(image_pb2_grpc.ImageServiceServicer):
    """Every image id exists (so `vm create --image ID` resolves); names are not known."""

    async def GetImage(self, request: image_pb2.GetImageRequest, context: Any) -> image_pb2.Image:
        image = Image(id=request.image_id, name=request.image_id, org_id=request.org_id)
        return to_proto(image, image_pb2.Image())


class FakeServer:
    """A grpc.aio server in a thread of its own, so tests may call `asyncio.run` (inside `main`) freely."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Any = None
        self.port = 0

    async def _start(self) -> None:
        self.server = grpc.aio.server()
        vm_pb2_grpc.add_VmServiceServicer_to_server(FakeVms(self.state), self.server)  # type: ignore[no-untyped-call]
        node_pb2_grpc.add_NodeServiceServicer_to_server(  # type: ignore[no-untyped-call]
            FakeNodes(self.state), self.server
        )
        image_pb2_grpc.add_ImageServiceServicer_to_server(FakeImages(), self.server)  # type: ignore[no-untyped-call]
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def reset(self) -> FakeState:
        self.state.__init__()  # type: ignore[misc]  # in place: the servicers hold this object
        return self.state


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeState:
    for name in (
        "PLASMAVMC_ENDPOINT", "PLASMAVMC_CLOUD", "PLASMAVMC_OUTPUT", "PLASMAVMC_ORG", "PLASMAVMC_PROJECT",
        "PLASMAVMC_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLASMAVMC_ENDPOINT", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("PLASMAVMC_CLI_CONFIG", "/nonexistent/plasmavmc.toml")  # no profile of the user
    return server.reset()


def _vm(
    n: int, state: VmState = VmState.RUNNING, org: str = "default", project: str = "default"
) -> VirtualMachine:
    return VirtualMachine(
        id=f"vm-{n:04d}", name=f"web-{n}", org_id=org, project_id=project, state=state, node_id="node-a",
        hypervisor=HypervisorType.KVM, created_at=int(time.time()) - 120,
        spec=VmSpec(cpu=CpuSpec(vcpus=n), memory=MemorySpec(size_mib=256 * n)),
    )


def _seed(state: FakeState, *vms: VirtualMachine) -> None:
    for vm in vms:
        state.vms[vm.id] = vm


def _columns_aligned(lines: list[str]) -> None:
    """Every header word starts where its column's cells start."""
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    for line in lines[1:]:
        for start in starts[1:]:
            assert line[start - 2:start] == "  " and line[start] != " ", (header, line)


# --- vm list / get ----------------------------------------------------------------------------------


def test_vm_list_table_follows_pages_and_aligns(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(fake, _vm(1), _vm(2, VmState.STOPPED), _vm(13, VmState.ERROR), _vm(4, org="other"))
    assert main(["vm", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "NODE", "HYPERVISOR", "VCPUS", "MEMORY", "AGE"]
    assert [line.split() for line in lines[1:]] == [
        ["vm-0001", "web-1", "RUNNING", "node-a", "kvm", "1", "256MiB", "2m"],
        ["vm-0002", "web-2", "STOPPED", "node-a", "kvm", "2", "512MiB", "2m"],
        ["vm-0013", "web-13", "ERROR", "node-a", "kvm", "13", "3328MiB", "2m"],
    ]
    _columns_aligned(lines)
    assert len(fake.requests("ListVms")) == 2  # page size 2: three VMs take two pages


def test_vm_list_filters_go_to_the_server(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(fake, _vm(1), _vm(2, VmState.STOPPED))
    argv = ["vm", "list", "--state", "running", "--state", "ERROR", "--node", "node-a", "--label", "tier=web"]
    assert main(argv) == 0
    sent = fake.requests("ListVms")[-1]
    assert list(sent.states) == [types_pb2.VM_STATE_RUNNING, types_pb2.VM_STATE_ERROR]
    assert list(sent.node_ids) == ["node-a"] and dict(sent.labels) == {"tier": "web"}
    capsys.readouterr()
    assert main(["vm", "list", "--state", "sleeping"]) == 2  # a usage error naming the states; nothing sent
    assert "RUNNING" in capsys.readouterr().err
    assert len(fake.requests("ListVms")) == 1


def test_vm_list_json_is_a_list_of_records(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(fake, _vm(1), _vm(2, VmState.STOPPED))
    assert main(["-o", "json", "vm", "list"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["id"], d["name"], d["state"]) for d in data] == [
        ("vm-0001", "web-1", "running"), ("vm-0002", "web-2", "stopped")
    ]
    assert data[1]["spec"]["memory"]["size_mib"] == 512
    assert data[0]["hypervisor"] == "kvm" and data[0]["node_id"] == "node-a"


def test_vm_list_empty_prints_only_the_header(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "list"]) == 0
    assert capsys.readouterr().out.split() == ["ID", "NAME", "STATE", "NODE", "HYPERVISOR", "VCPUS", "MEMORY",
                                               "AGE"]
    assert main(["-o", "json", "vm", "list"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_org_and_project_come_from_env_then_flags(
    fake: FakeState, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(fake, _vm(1, org="acme", project="shop"))
    assert main(["vm", "list"]) == 0
    assert fake.requests("ListVms")[-1].org_id == "default"
    assert fake.requests("ListVms")[-1].project_id == "default"
    assert "web-1" not in capsys.readouterr().out

    monkeypatch.setenv("PLASMAVMC_ORG", "acme")
    monkeypatch.setenv("PLASMAVMC_PROJECT", "shop")
    assert main(["vm", "list"]) == 0
    assert (fake.requests("ListVms")[-1].org_id, fake.requests("ListVms")[-1].project_id) == ("acme", "shop")
    assert "web-1" in capsys.readouterr().out

    assert main(["--org", "o2", "--project", "p2", "vm", "get", "web-1"]) == 1  # flags beat the env
    ref = fake.requests("GetVm")[-1].vm
    assert (ref.org_id, ref.project_id, ref.vm_id) == ("o2", "p2", "web-1")


def test_vm_get_by_name_shows_details(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(fake, _vm(3))
    assert main(["vm", "get", "web-3"]) == 0
    out = capsys.readouterr().out
    assert "vm-0003" in out and "RUNNING" in out and "768MiB" in out
    assert main(["-o", "json", "vm", "get", "vm-0003"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "web-3"


# --- vm create / start ------------------------------------------------------------------------------


def test_vm_create_start_wait_json(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-o", "json", "vm", "create", "db-1", "--image", "img-debian", "--vcpus", "2",
            "--memory-mib", "512", "--disk-gib", "4", "--hypervisor", "firecracker",
            "--kernel-args", "quiet", "--label", "tier=db", "--label", "team=core", "--start", "--wait", "10"]
    assert main(argv) == 0
    vm = json.loads(capsys.readouterr().out)
    assert (vm["name"], vm["state"]) == ("db-1", "running")

    (create,) = fake.requests("CreateVm")
    assert (create.name, create.org_id, create.project_id) == ("db-1", "default", "default")
    assert create.hypervisor == types_pb2.HYPERVISOR_TYPE_FIRECRACKER
    assert dict(create.labels) == {"tier": "db", "team": "core"}
    spec = from_proto(VmSpec, create.spec)
    assert (spec.cpu.vcpus, spec.memory.size_mib, spec.boot.kernel_args) == (2, 512, "quiet")
    (disk,) = spec.disks
    assert (disk.source.image_id, disk.size_gib, disk.boot_index) == ("img-debian", 4, 0)
    assert [r.vm.vm_id for r in fake.requests("StartVm")] == [vm["id"]]
    assert fake.requests("WatchVm")  # --wait watched the VM reach RUNNING


def test_vm_create_start_table(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "create", "web-9", "--image", "img-1", "--start"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "STATE"]
    assert lines[1].split()[1:7] == ["web-9", "STARTING", "node-a", "kvm", "1", "256MiB"]
    assert not fake.requests("WatchVm")  # no --wait: no waiting
    assert len(lines) == 2


def test_vm_create_without_start_does_not_start(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "create", "web-9", "--image", "img-1", "--machine-type", "q35"]) == 0
    assert "STOPPED" in capsys.readouterr().out
    assert not fake.requests("StartVm")
    assert from_proto(VmSpec, fake.requests("CreateVm")[0].spec).boot.machine_type == "q35"


def test_token_is_sent_as_bearer_metadata(
    fake: FakeState, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--token", "s3cret", "vm", "list"]) == 0
    assert fake.metadata[-1]["authorization"] == "Bearer s3cret"
    monkeypatch.setenv("PLASMAVMC_TOKEN", "from-env")
    assert main(["vm", "list"]) == 0
    assert fake.metadata[-1]["authorization"] == "Bearer from-env"


# --- errors -----------------------------------------------------------------------------------------


def test_not_found_survives_the_wire_with_its_field(
    fake: FakeState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vm", "get", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: VM_NOT_FOUND: vm 'nope' not found (field: vm.vm_id)\n"
    assert captured.out == ""


@pytest.mark.parametrize("command", [["vm", "watch", "nope"], ["vm", "console", "nope", "--no-follow"]])
def test_errors_inside_a_server_stream_are_decoded(
    fake: FakeState, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main(command) == 1
    assert capsys.readouterr().err == "error: VM_NOT_FOUND: vm 'nope' not found (field: vm.vm_id)\n"


def test_invalid_state_without_field(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(fake, _vm(1))
    assert main(["vm", "start", "web-1"]) == 1
    assert capsys.readouterr().err == "error: INVALID_STATE: cannot start a VM in state RUNNING\n"


def test_node_not_found(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "cordon", "ghost"]) == 1
    assert capsys.readouterr().err == (
        "error: NODE_NOT_FOUND: node 'ghost' not found (neither an id nor a name) (field: node)\n")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["vm"],
        ["vm", "create", "x"],  # --image is required
        ["vm", "create", "x", "--image", "i", "--label", "novalue"],
        ["vm", "create", "x", "--image", "i", "--vcpus", "0"],
        ["vm", "create", "x", "--image", "i", "--hypervisor", "xen"],
        ["-o", "xml", "vm", "list"],
        ["--cert-file", "c.pem", "vm", "list"],  # a client cert needs its key
        ["vm", "frobnicate"],
    ],
)
def test_usage_errors_exit_2(fake: FakeState, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err
    assert not fake.calls


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "create", "--help"]) == 0
    assert "--image" in capsys.readouterr().out


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nobody listens on it
    assert main(["--addr", f"http://127.0.0.1:{port}", "vm", "list"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"error: UNAVAILABLE: cannot reach http://127.0.0.1:{port}"
    assert "Traceback" not in err


def test_unreadable_tls_file_is_an_error_not_a_traceback(
    fake: FakeState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--ca-file", "/nonexistent/ca.pem", "vm", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ca.pem" in err and "Traceback" not in err


# --- streams ----------------------------------------------------------------------------------------


def test_console_writes_raw_bytes(fake: FakeState, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    _seed(fake, _vm(1))
    assert main(["vm", "console", "web-1", "--no-follow"]) == 0
    assert capsysbinary.readouterr().out == b"boot ok\r\n\x1b[0mlogin: "
    assert fake.requests("GetConsole")[0].follow is False
    assert fake.requests("GetConsole")[0].console_type == types_pb2.CONSOLE_TYPE_SERIAL


def test_watch_table_and_json_lines(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(fake, _vm(1, VmState.STARTING))
    assert main(["vm", "watch", "web-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1:] for line in lines] == [
        ["r1", "initial", "STARTING"],
        ["r2", "state_changed", "Started", "STARTING", "->", "RUNNING", "by", "alice", "vm", "vm-0001"],
    ]
    assert lines[0].split()[0] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))

    fake.vms["vm-0001"] = _vm(1, VmState.STARTING)
    assert main(["-o", "json", "vm", "watch", "web-1"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["type"], e["previous_state"], e["state"]) for e in events] == [
        ("initial", None, "starting"), ("state_changed", "starting", "running")
    ]
    assert events[0]["vm"]["id"] == "vm-0001" and events[1]["vm"] is None
    assert (events[1]["reason"], events[1]["actor"], events[1]["revision"]) == ("Started", "alice", 2)


# --- nodes ------------------------------------------------------------------------------------------


def _node(node_id: str, **kw: Any) -> Node:
    return Node(
        id=node_id, state=NodeState.READY, capacity=NodeCapacity(8, 16384, 100),
        allocatable=NodeCapacity(7, 15360, 90), allocated=NodeCapacity(2, 1024, 10),
        hypervisors=(HypervisorType.KVM, HypervisorType.FIRECRACKER), accelerator="tcg",
        last_heartbeat=int(time.time()) - 3, **kw,
    )


def test_node_list_table_and_json(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    fake.nodes = {"node-a": _node("node-a"), "node-bb": _node("node-bb", name="b")}
    assert main(["node", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATE", "VCPUS", "MEMORY", "HYPERVISORS", "ACCEL", "HEARTBEAT"]
    row = lines[1].split()
    assert row[:6] == ["node-a", "READY", "2/7", "1024/15360MiB", "kvm,firecracker", "tcg"]
    assert row[6] in {"3s", "4s", "5s"} and row[7] == "ago"
    _columns_aligned(lines)

    assert main(["-o", "json", "node", "list"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["id"] for n in data] == ["node-a", "node-bb"]
    assert data[0]["hypervisors"] == ["kvm", "firecracker"]


def test_node_list_prints_control_characters_escaped(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    """A record stored before names were checked (or by a buggy agent) cannot drive the terminal."""
    fake.nodes = {"evil": replace(_node("evil\x1b[2J\x1b[31m"), accelerator="tcg\nkvm\u202e")}
    assert main(["node", "list"]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\u202e" not in printed and len(printed.splitlines()) == 2
    assert "evil\\x1b[2J\\x1b[31m" in printed and "tcg\\nkvm\\u202e" in printed


def test_node_cordon(fake: FakeState, capsys: pytest.CaptureFixture[str]) -> None:
    fake.nodes = {"node-a": _node("node-a")}
    assert main(["-o", "json", "node", "cordon", "node-a"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "cordoned"


# --- the client directly ----------------------------------------------------------------------------


async def test_client_wait_for_state_times_out_naming_the_last_state(server: FakeServer) -> None:
    state = server.reset()
    _seed(state, _vm(1, VmState.STOPPED))
    async with await PlasmaClient.connect(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(TimeoutError, match=r"vm web-1: still STOPPED after 0.5s waiting for RUNNING"):
            await client.wait_for_state("default", "default", "web-1", {VmState.RUNNING}, timeout=0.5)
        vm = await client.wait_for_state("default", "default", "web-1", {VmState.STOPPED}, timeout=5)
        assert vm.id == "vm-0001"
        with pytest.raises(VmNotFound) as info:
            await client.get_vm("default", "default", "missing")
        assert info.value.field == "vm.vm_id"
