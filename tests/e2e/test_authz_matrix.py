"""Every RPC of every public service, and the WebSocket console, times every kind of caller: no leak, no act.

A real server process (SQLite, seeded guest image) with simulated agents; no VM needs to boot here, only
to exist. Org `acme` has projects `web` and `ops`, org `rival` has `x`. Callers: `member` and `viewer`
of acme/web, `neighbour` (member of acme/ops), `outsider` (member of rival/x), and three without a valid
credential: none at all, an expired token, a token whose payload was altered (claims to be `admin`).

Expected outcomes per RPC are written as four letters for (member, viewer, neighbour, outsider):
O = admitted (any answer but an authorization one), P = PERMISSION_DENIED, N = the resource's own
NOT_FOUND, as for a missing one. Every refused call runs first, against resources the admin made; the
test then checks nothing changed. The admitted calls run after, on resources made for them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import ErrorCode, PlasmaError
from plasmavmc.types.iam import AuditFilter, Binding, PrincipalKind, Role
from plasmavmc.types.node import NodeCapacity
from plasmavmc.v1 import (
    iam_pb2,
    iam_pb2_grpc,
    image_pb2,
    image_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    quota_pb2,
    quota_pb2_grpc,
    types_pb2,
    vm_pb2,
    vm_pb2_grpc,
)
from plasmavmc.wire.status import from_rpc_error
from tests.e2e.simulated import SIM, SimCluster, sim_cluster, sim_spec

AUTH_CODES = {ErrorCode.UNAUTHENTICATED, ErrorCode.PERMISSION_DENIED}
CALLERS = ("member", "viewer", "neighbour", "outsider", "none", "expired", "tampered")
PEOPLE = {"member": ("acme", "web"), "viewer": ("acme", "web"), "neighbour": ("acme", "ops"),
          "outsider": ("rival", "x")}


@dataclass(frozen=True)
class Case:
    rpc: str
    expect: str  # member viewer neighbour outsider: O / P / N
    call: Callable[[Any, str, tuple[tuple[str, str], ...]], Any]  # (stubs, vm name, metadata) -> awaitable
    hidden: ErrorCode = ErrorCode.VM_NOT_FOUND
    neighbour_hidden: ErrorCode | None = None  # where the neighbour sees the org but not the project

    def hidden_for(self, who: str) -> ErrorCode:
        return self.neighbour_hidden if who == "neighbour" and self.neighbour_hidden else self.hidden


def _vm(vm: str) -> vm_pb2.VmRef:
    return vm_pb2.VmRef(org_id="acme", project_id="web", vm_id=vm)


def _unary(method: str, make: Callable[[str], Any], stub: str) -> Callable[..., Any]:
    return lambda s, vm, md: getattr(s[stub], method)(make(vm), metadata=md, timeout=30)


async def _drain(call: Any) -> None:
    async for _ in call:
        return  # the first message is enough: the call was admitted


def _stream(method: str, make: Callable[[str], Any], stub: str) -> Callable[..., Any]:
    return lambda s, vm, md: _drain(getattr(s[stub], method)(make(vm), metadata=md, timeout=30))


def _upload(s: Any, vm: str, md: Any) -> Any:
    async def parts() -> AsyncIterator[image_pb2.UploadImageRequest]:
        yield image_pb2.UploadImageRequest(metadata=image_pb2.CreateImageRequest(name=f"up-{vm}", org_id="acme"))
        yield image_pb2.UploadImageRequest(chunk=b"\0" * 65536)

    return s["image"].UploadImage(parts(), metadata=md, timeout=60)


def vm_cases() -> list[Case]:
    v, ref = "vm", _vm
    disk = types_pb2.DiskSpec(id="extra", size_gib=1)
    nic = types_pb2.NetworkSpec(id="nic9", network_id="default")
    create = vm_pb2.CreateVmRequest(org_id="acme", project_id="web", spec=_spec_msg())
    return [
        Case("CreateVm", "OPNN", _unary("CreateVm", lambda vm: _named(create, f"new-{vm}"), v), ErrorCode.NOT_FOUND),
        Case("GetVm", "OONN", _unary("GetVm", lambda vm: vm_pb2.GetVmRequest(vm=ref(vm)), v)),
        Case("ListVms", "OONN", _unary("ListVms", lambda vm: vm_pb2.ListVmsRequest(org_id="acme", project_id="web"),
                                       v), ErrorCode.NOT_FOUND),
        Case("UpdateVm", "OPNN", _unary("UpdateVm", lambda vm: vm_pb2.UpdateVmRequest(
            vm=ref(vm), labels={"x": "y"}, update_labels=True), v)),
        Case("StartVm", "OPNN", _unary("StartVm", lambda vm: vm_pb2.StartVmRequest(vm=ref(vm)), v)),
        Case("StopVm", "OPNN", _unary("StopVm", lambda vm: vm_pb2.StopVmRequest(vm=ref(vm), force=True), v)),
        Case("RebootVm", "OPNN", _unary("RebootVm", lambda vm: vm_pb2.RebootVmRequest(vm=ref(vm)), v)),
        Case("ResetVm", "OPNN", _unary("ResetVm", lambda vm: vm_pb2.ResetVmRequest(vm=ref(vm)), v)),
        Case("AttachDisk", "OPNN", _unary("AttachDisk", lambda vm: vm_pb2.AttachDiskRequest(vm=ref(vm), disk=disk), v)),
        Case("DetachDisk", "OPNN", _unary("DetachDisk", lambda vm: vm_pb2.DetachDiskRequest(vm=ref(vm),
                                                                                          disk_id="root"), v)),
        Case("AttachNic", "OPNN", _unary("AttachNic", lambda vm: vm_pb2.AttachNicRequest(vm=ref(vm), nic=nic), v)),
        Case("DetachNic", "OPNN", _unary("DetachNic", lambda vm: vm_pb2.DetachNicRequest(vm=ref(vm), nic_id="n0"), v)),
        Case("RunVm", "OPNN", _stream("RunVm", lambda vm: _named(create, f"run-{vm}"), v), ErrorCode.NOT_FOUND),
        Case("GetConsole", "OPNN", _stream("GetConsole", lambda vm: vm_pb2.GetConsoleRequest(vm=ref(vm)), v)),
        Case("WatchVm", "OONN", _stream("WatchVm", lambda vm: vm_pb2.WatchVmRequest(vm=ref(vm), send_initial=True),
                                        v)),
        Case("SnapshotVm", "OPNN", _unary("SnapshotVm", lambda vm: vm_pb2.SnapshotVmRequest(vm=ref(vm),
                                                                                          snapshot_id="s1"), v)),
        Case("RestoreVm", "OPNN", _unary("RestoreVm", lambda vm: vm_pb2.RestoreVmRequest(vm=ref(vm),
                                                                                       snapshot_id="s1"), v)),
        Case("ListSnapshots", "OONN", _unary("ListSnapshots", lambda vm: vm_pb2.ListSnapshotsRequest(vm=ref(vm)), v)),
        Case("DeleteSnapshot", "OPNN", _unary("DeleteSnapshot", lambda vm: vm_pb2.DeleteSnapshotRequest(
            vm=ref(vm), snapshot_id="s1"), v)),
        Case("DeleteVm", "OPNN", _unary("DeleteVm", lambda vm: vm_pb2.DeleteVmRequest(vm=ref(vm), force=True), v)),
    ]


def image_cases(image_ids: dict[str, str], vm_ids: dict[str, str]) -> list[Case]:
    i, hid = "image", ErrorCode.IMAGE_NOT_FOUND
    img = lambda vm: image_ids[vm]  # noqa: E731 - the image made for this run (target or mine)
    snap = lambda vm: image_pb2.ImageSource(snapshot=image_pb2.SnapshotSource(vm_id=vm_ids[vm], disk_id="root"))  # noqa: E731
    return [
        Case("CreateImage", "OPNN", _unary("CreateImage", lambda vm: image_pb2.CreateImageRequest(
            name=f"from-{vm}", org_id="acme", source=snap(vm)), i), ErrorCode.NOT_FOUND, ErrorCode.VM_NOT_FOUND),
        Case("GetImage", "OOON", _unary("GetImage", lambda vm: image_pb2.GetImageRequest(org_id="acme",
                                                                                       image_id=img(vm)), i), hid),
        Case("ListImages", "OOON", _unary("ListImages", lambda vm: image_pb2.ListImagesRequest(org_id="acme"), i),
             ErrorCode.NOT_FOUND),
        Case("UpdateImage", "PPPN", _unary("UpdateImage", lambda vm: image_pb2.UpdateImageRequest(
            org_id="acme", image_id=img(vm), name="renamed"), i), hid),
        Case("DeleteImage", "PPPN", _unary("DeleteImage", lambda vm: image_pb2.DeleteImageRequest(
            org_id="acme", image_id=img(vm)), i), hid),
        Case("UploadImage", "OPON", _upload, ErrorCode.NOT_FOUND),
        Case("DownloadImage", "OOON", _stream("DownloadImage", lambda vm: image_pb2.DownloadImageRequest(
            org_id="acme", image_id=img(vm)), i), hid),
        Case("ConvertImage", "OPON", _unary("ConvertImage", lambda vm: image_pb2.ConvertImageRequest(
            org_id="acme", image_id=img(vm), target_format=image_pb2.IMAGE_FORMAT_QCOW2, name=f"conv-{vm}"), i),
            hid),
    ]


def other_cases() -> list[Case]:
    n, q, a, nf = "node", "quota", "iam", ErrorCode.NOT_FOUND
    binding = iam_pb2.RoleBinding(principal_id="viewer", role="project-member", org_id="acme", project_id="web")
    return [
        Case("ListNodes", "PPPP", _unary("ListNodes", lambda vm: node_pb2.ListNodesRequest(), n)),
        Case("GetNode", "PPPP", _unary("GetNode", lambda vm: node_pb2.GetNodeRequest(node_id="sim-1"), n)),
        Case("CordonNode", "PPPP", _unary("CordonNode", lambda vm: node_pb2.CordonNodeRequest(node_id="sim-1"), n)),
        Case("UncordonNode", "PPPP", _unary("UncordonNode", lambda vm: node_pb2.UncordonNodeRequest(
            node_id="sim-1"), n)),
        Case("DrainNode", "PPPP", _unary("DrainNode", lambda vm: node_pb2.DrainNodeRequest(node_id="sim-1"), n)),
        Case("DeleteNode", "PPPP", _unary("DeleteNode", lambda vm: node_pb2.DeleteNodeRequest(
            node_id="sim-1", force=True), n)),
        Case("GetQuota", "OONN", _unary("GetQuota", lambda vm: quota_pb2.GetQuotaRequest(org_id="acme",
                                                                                       project_id="web"), q), nf),
        Case("SetQuota", "PPNN", _unary("SetQuota", lambda vm: quota_pb2.SetQuotaRequest(
            org_id="acme", project_id="web", limits=quota_pb2.ResourceLimits(max_vms=0)), q), nf),
        Case("CreateOrg", "PPPP", _unary("CreateOrg", lambda vm: iam_pb2.CreateOrgRequest(org_id="evil"), a), nf),
        Case("ListOrgs", "OOOO", _unary("ListOrgs", lambda vm: iam_pb2.ListOrgsRequest(), a), nf),
        Case("CreateProject", "PPPN", _unary("CreateProject", lambda vm: iam_pb2.CreateProjectRequest(
            org_id="acme", project_id="evil"), a), nf),
        Case("ListProjects", "PPPN", _unary("ListProjects", lambda vm: iam_pb2.ListProjectsRequest(org_id="acme"),
                                            a), nf),
        Case("CreatePrincipal", "PPPN", _unary("CreatePrincipal", lambda vm: iam_pb2.CreatePrincipalRequest(
            principal=iam_pb2.Principal(id="evil", org_id="acme")), a), nf),
        Case("ListPrincipals", "PPPN", _unary("ListPrincipals", lambda vm: iam_pb2.ListPrincipalsRequest(
            org_id="acme"), a), nf),
        Case("CreateBinding", "PPPN", _unary("CreateBinding", lambda vm: binding, a), nf),
        Case("DeleteBinding", "PPPN", _unary("DeleteBinding", lambda vm: iam_pb2.RoleBinding(
            principal_id="member", role="project-member", org_id="acme", project_id="web"), a), nf),
        Case("ListBindings", "PPPN", _unary("ListBindings", lambda vm: iam_pb2.ListBindingsRequest(org_id="acme"),
                                            a), nf),
        Case("CreateApiKey", "PPPN", _unary("CreateApiKey", lambda vm: iam_pb2.CreateApiKeyRequest(
            principal_id="ops-bot"), a), nf),
        Case("IssueToken", "OOOO", _unary("IssueToken", lambda vm: iam_pb2.IssueTokenRequest(ttl_seconds=60), a), nf),
        Case("WhoAmI", "OOOO", _unary("WhoAmI", lambda vm: iam_pb2.WhoAmIRequest(), a), nf),
        Case("RotateSigningKey", "PPPP", _unary("RotateSigningKey", lambda vm: iam_pb2.RotateSigningKeyRequest(), a),
             nf),
        Case("CreateConsoleTicket", "OPNN", _unary("CreateConsoleTicket", lambda vm: iam_pb2.CreateConsoleTicketRequest(
            vm=_vm(vm)), a)),
        Case("ListAuditEvents", "PPPN", _unary("ListAuditEvents", lambda vm: iam_pb2.ListAuditEventsRequest(
            org_id="acme"), a), nf),
    ]


def _spec_msg() -> types_pb2.VmSpec:
    from plasmavmc.wire.convert import to_proto

    return to_proto(sim_spec(), types_pb2.VmSpec())  # type: ignore[no-any-return]


def _named(request: vm_pb2.CreateVmRequest, name: str) -> vm_pb2.CreateVmRequest:
    copy = vm_pb2.CreateVmRequest()
    copy.CopyFrom(request)
    copy.name = name
    copy.hypervisor = types_pb2.HYPERVISOR_TYPE_SIMULATED
    return copy


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@dataclass
class World:
    sim: SimCluster
    admin: PlasmaClient
    stubs: dict[str, Any]
    tokens: dict[str, str]
    images: dict[str, str]  # "target" / "mine" -> image id
    vms: dict[str, str]  # "target" / "mine" -> VM id
    console: str


async def _expired_token(admin: PlasmaClient, api: str) -> str:
    async with await PlasmaClient.connect(api, token=await admin.create_api_key("member")) as member:
        token, _ = await member.issue_token(ttl_seconds=1)
    async with await PlasmaClient.connect(api, token=token) as holder:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                await holder.whoami()
            except PlasmaError as err:
                assert err.code == ErrorCode.UNAUTHENTICATED
                return token
            await asyncio.sleep(0.2)  # polling for the expiry, with a deadline
    raise AssertionError("a 1 s token was still accepted after 30 s")


async def _people(admin: PlasmaClient, api: str) -> dict[str, str]:
    for org, projects in (("acme", ("web", "ops")), ("rival", ("x",))):
        await admin.create_org(org)
        for project in projects:
            await admin.create_project(org, project)
    await admin.create_principal("ops-bot", "acme", PrincipalKind.SERVICE_ACCOUNT)
    tokens = {}
    for who, (org, project) in PEOPLE.items():
        await admin.create_principal(who, org)
        role = Role.PROJECT_VIEWER if who == "viewer" else Role.PROJECT_MEMBER
        await admin.create_binding(Binding(who, role, org, project))
        async with await PlasmaClient.connect(api, token=await admin.create_api_key(who)) as person:
            tokens[who] = (await person.issue_token(ttl_seconds=3600))[0]
    tokens["none"] = ""
    tokens["expired"] = await _expired_token(admin, api)
    tokens["tampered"] = _tampered(tokens["member"])
    return tokens


async def _upload_image(admin: PlasmaClient, name: str) -> str:
    async def body() -> AsyncIterator[bytes]:
        yield b"\0" * 65536

    return (await admin.upload_image("acme", name, body())).id


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("authz")
    nodes = [("sim-1", NodeCapacity(64, 65536, 1000), {})]
    async with sim_cluster(root, guest_dir, nodes) as sim:
        admin = sim.client
        tokens = await _people(admin, sim.api)
        vms = {vm: (await admin.create_vm(vm, "acme", "web", sim_spec(), hypervisor=SIM)).id
               for vm in ("target", "mine")}
        images = {vm: await _upload_image(admin, f"img-{vm}") for vm in ("target", "mine")}
        channel = grpc.aio.insecure_channel(sim.api)
        stubs = {"vm": vm_pb2_grpc.VmServiceStub(channel), "image": image_pb2_grpc.ImageServiceStub(channel),
                 "node": node_pb2_grpc.NodeServiceStub(channel), "quota": quota_pb2_grpc.QuotaServiceStub(channel),
                 "iam": iam_pb2_grpc.IamServiceStub(channel)}
        cfg = tomllib.loads((root / "server.toml").read_text())
        yield World(sim, admin, stubs, tokens, images, vms, f"http://{cfg['server']['console_addr']}")
        await channel.close()


def _metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


async def _outcome(case: Case, world: World, who: str, vm: str) -> PlasmaError | None:
    try:
        await case.call(world.stubs, vm, _metadata(world.tokens[who]))
    except grpc.aio.AioRpcError as exc:
        return from_rpc_error(exc)
    return None


def _expected(case: Case, who: str) -> str:
    return "U" if who in ("none", "expired", "tampered") else case.expect[CALLERS.index(who)]


async def _state(world: World) -> Any:
    """Everything a refused call could have changed, as the admin sees it."""
    admin = world.admin
    vms = {vm.name: (vm.state, vm.labels, vm.spec, vm.node_id) for vm in await admin.list_all_vms("acme", "web")}
    images = sorted((i.id, i.name, i.status, i.visibility) for i in await admin.list_images("acme"))
    nodes = [(n.id, n.state) for n in await admin.list_nodes()]
    iam = (await admin.list_bindings("acme"), await admin.list_projects("acme"), await admin.list_principals("acme"),
           await admin.list_orgs(), await admin.get_quota("acme", "web"))
    snaps = await admin.list_snapshots("acme", "web", "target")
    return vms, images, nodes, iam, snaps


ALL_CASES = [*vm_cases(), *other_cases()]


def ordered(world: World) -> list[Case]:
    """Every case; DeleteVm last, so the admitted run deletes its VM only when nothing else needs it."""
    return sorted([*ALL_CASES, *image_cases(world.images, world.vms)], key=lambda c: c.rpc == "DeleteVm")


async def test_refused_calls_leak_nothing_and_change_nothing(world: World) -> None:
    cases = ordered(world)
    before = await _state(world)
    refused = 0
    for case in cases:
        for who in CALLERS:
            want = _expected(case, who)
            if want == "O":
                continue
            err = await _outcome(case, world, who, "target")
            assert err is not None, f"{case.rpc} as {who}: admitted, expected {want}"
            got = {"U": ErrorCode.UNAUTHENTICATED, "P": ErrorCode.PERMISSION_DENIED, "N": case.hidden_for(who)}[want]
            assert err.code == got, f"{case.rpc} as {who}: {err}"
            refused += 1
    assert refused > 200
    assert await _state(world) == before


async def test_hidden_reads_exactly_like_missing(world: World) -> None:
    """The outsider's NOT_FOUND for an existing VM or image is word for word the admin's for a missing one."""
    vm_case = next(c for c in ALL_CASES if c.rpc == "GetVm")
    hidden = await _outcome(vm_case, world, "outsider", "target")
    with pytest.raises(PlasmaError) as missing:
        await world.admin.get_vm("acme", "web", "ghost")
    assert hidden is not None

    def without_request_id(message: str) -> str:  # each answer names its own request id (observability)
        return re.sub(r" ?\(request id [^)]*\)", "", message)

    assert (without_request_id(hidden.message).replace("target", "X")
            == without_request_id(missing.value.message).replace("ghost", "X"))
    assert hidden.field == missing.value.field


async def test_lists_show_only_what_the_caller_may_see(world: World) -> None:
    orgs = await world.stubs["iam"].ListOrgs(iam_pb2.ListOrgsRequest(), metadata=_metadata(world.tokens["outsider"]))
    assert [o.id for o in orgs.orgs] == ["rival"]
    orgs = await world.stubs["iam"].ListOrgs(iam_pb2.ListOrgsRequest(), metadata=_metadata(world.tokens["member"]))
    assert [o.id for o in orgs.orgs] == ["acme"]


async def test_admitted_calls_act_as_the_caller(world: World) -> None:
    for case in ordered(world):
        for who in CALLERS:
            if _expected(case, who) != "O":
                continue
            err = await _outcome(case, world, who, "mine")
            if err is not None:  # admitted: any error but an authorization one (the simulated VM may refuse)
                assert err.code not in AUTH_CODES, f"{case.rpc} as {who}: {err}"
                assert not (err.code == case.hidden_for(who) and err.field in ("vm.vm_id", "image_id", "org_id")), (
                    f"{case.rpc} as {who}: {err}")
    made = await world.admin.get_vm("acme", "web", "new-mine")
    assert made.created_by == "member"  # the authenticated principal, never a header


async def test_audit_records_refusals_and_mutations(world: World) -> None:
    await _outcome(next(c for c in ALL_CASES if c.rpc == "DeleteVm"), world, "viewer", "target")
    entries = await world.admin.list_audit_events(AuditFilter(org_id="acme", principal="viewer", limit=1000))
    refused = [e for e in entries if e.action == "plasmavmc:vms:delete" and e.result == "PERMISSION_DENIED"]
    assert refused and refused[-1].resource == "vm/acme/web/target" and refused[-1].source
    created = await world.admin.list_audit_events(AuditFilter(org_id="acme", principal="admin", limit=1000))
    assert any(e.action == "plasmavmc:vms:create" and e.result == "OK" for e in created)
    await world.admin.get_vm("acme", "web", "target")  # an admitted read that succeeds: not audited
    with pytest.raises(PlasmaError) as missing:  # one that fails after admission: audited with its code
        await world.admin.get_vm("acme", "web", "no-such-vm")
    assert missing.value.code == ErrorCode.VM_NOT_FOUND
    deadline = time.monotonic() + 10
    while True:
        reads = [e for e in await world.admin.list_audit_events(AuditFilter(org_id="acme", principal="admin",
                                                                             limit=1000))
                 if e.action == "plasmavmc:vms:get"]
        if any(e.resource.endswith("/no-such-vm") for e in reads) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)  # polling the audit log, with a deadline
    assert ("NOT_FOUND", "vm/acme/web/no-such-vm") in [(e.result, e.resource) for e in reads]
    assert all(e.result != "OK" for e in reads)  # no successful read was recorded


CONSOLE_EXPECT = {"viewer": 403, "neighbour": 404, "outsider": 404, "none": 401, "expired": 401, "tampered": 401}


async def _console_status(world: World, vm: str, *, ticket: str = "", token: str = "",
                          origin: str | None = None) -> int:
    url = f"{world.console}/v1/orgs/acme/projects/web/vms/{vm}/console?type=serial"
    url += f"&ticket={ticket}" if ticket else ""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if origin:
        headers["Origin"] = origin
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers, protocols=("binary",)) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_console_gateway_needs_the_console_action_on_that_vm(world: World) -> None:
    for who, status in CONSOLE_EXPECT.items():
        assert await _console_status(world, "target", token=world.tokens[who]) == status, who
    async with await PlasmaClient.connect(world.sim.api, token=world.tokens["member"]) as member:
        ticket = (await member.create_console_ticket("acme", "web", "target")).ticket
    assert await _console_status(world, "target", ticket=ticket, origin="http://evil.example") == 403
    assert await _console_status(world, "mine", ticket=ticket) == 404  # a ticket is good for one VM only
    assert await _console_status(world, "target", ticket=ticket + "x") == 401
    # admitted: the gateway got past authorization (the simulated VM then may or may not have a console)
    assert await _console_status(world, "target", ticket=ticket) not in (401, 403, 404)
    with pytest.raises(grpc.aio.AioRpcError) as info:  # a ticket is no API credential
        await world.stubs["vm"].GetVm(vm_pb2.GetVmRequest(vm=_vm("target")), metadata=_metadata(ticket))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _cli(world: World, home: Path, *args: str, env_extra: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLASMAVMC_")}
    env.update({"HOME": str(home), **(env_extra or {})})
    done = subprocess.run([sys.executable, "-m", "plasmavmc.cli", "--addr", world.sim.api, *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_cli_login_saves_a_token_the_next_commands_use(world: World, tmp_path: Path) -> None:
    key = await world.admin.create_api_key("viewer")
    out = await asyncio.to_thread(_cli, world, tmp_path, "login", "--api-key", key)
    saved = tmp_path / ".config" / "plasmavmc" / "credentials"
    assert str(saved) in out and stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert not saved.read_text().startswith("pvk_")  # the token, not the key
    who = await asyncio.to_thread(_cli, world, tmp_path, "iam", "whoami")
    assert who.splitlines()[0] == "principal viewer" and "project-viewer" in who
    admin_env = {"PLASMAVMC_CREDENTIALS": os.environ["PLASMAVMC_CREDENTIALS"]}
    audit = await asyncio.to_thread(_cli, world, tmp_path, "-o", "json", "audit", "list", "--principal", "viewer",
                                    env_extra=admin_env)
    assert any(e["action"] == "plasmavmc:iam:issue_token" and e["result"] == "OK" for e in json.loads(audit))
