"""Transport trust with real processes: the API over TLS, agents serving only the control plane's
certificate, and agent reports accepted only from the certificate of the node they name.

One cluster (server + agent `node-a` + a running QEMU VM) with every certificate from `plasmavmc.pki`.
The tables call every AgentService RPC on both sides with each client certificate a caller could hold
and check the outcome: served, refused by identity (PERMISSION_DENIED) or refused at the handshake.
Refused calls target the real VM, which afterwards runs on with the same QEMU process: no act.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.message import Message

from plasmavmc.client import ClientTls, ConnectionFailed, PlasmaClient
from plasmavmc.errors import NodeNotFound, PlasmaError
from plasmavmc.hypervisor.process import is_running
from plasmavmc.pki import certs, identity
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine
from plasmavmc.v1 import agent_pb2
from plasmavmc.wire.convert import to_proto
from tests.conftest import Proc, kill_leftover_qemu, needs_qemu, write_configs
from tests.e2e.helpers import ORG, PROJECT, tiny_spec
from tests.e2e.tls_cluster import NODE_A, NODE_B, Pem, TlsCluster, control_plane_claim, self_signed, start_tls_cluster

pytestmark = needs_qemu
SERVICE = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
CREDS = ("control-plane", "node-a", "node-b", "none", "self-signed")
SERVED, DENIED, HANDSHAKE = "served", "denied", "refused at handshake"
CLIENT_WRITE_RACE = "the client overwrote the status"
CP_HALF = {"Heartbeat", "HeartbeatStream", "ReportStatus"}  # the control plane serves these; the agent the rest
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[TlsCluster]:
    c = start_tls_cluster(tmp_path_factory.mktemp("tls"), guest_dir)
    try:
        yield c
    finally:
        c.cluster.stop()
        kill_leftover_qemu(c.cluster.root)


@pytest.fixture(scope="module")
async def api(tls: TlsCluster) -> AsyncIterator[PlasmaClient]:
    files = ClientTls(str(tls.pki / "ca.pem"), str(tls.pki / "client.pem"), str(tls.pki / "client.key"))
    async with await PlasmaClient.connect(f"https://{tls.cluster.api}", tls=files) as client:
        yield client


@pytest.fixture(scope="module")
async def running(api: PlasmaClient) -> VirtualMachine:
    """A VM the control plane placed on node-a and started there over mutual TLS."""
    await api.create_vm("tls-1", ORG, PROJECT, tiny_spec())
    vm = await api.start_vm(ORG, PROJECT, "tls-1")
    assert vm.state == VmState.RUNNING and vm.node_id == NODE_A and vm.status.host_pid
    return vm


def pem_of(tls: TlsCluster, cred: str, claim: identity.Identity) -> Pem | None:
    if cred == "none":
        return None
    if cred == "self-signed":
        return control_plane_claim() if claim == identity.control_plane() else self_signed(claim, [])
    return tls.pem(f"node-{cred}" if cred.startswith("node-") else cred)


def request_for(method: Any, vm: VirtualMachine | None, node: Node) -> Message:
    """A request for `method` about `vm` (None: a VM id nobody has) and, for reports, `node`."""
    msg: Any = message_factory.GetMessageClass(method.input_type)()
    vm_id = vm.id if vm is not None else str(uuid.uuid4())
    fields = method.input_type.fields_by_name
    if method.name == "CreateVm":
        forged = vm if vm is not None else VirtualMachine(id="", name="x", org_id=ORG, project_id=PROJECT)
        to_proto(forged, msg.vm)
        msg.vm.id = str(uuid.uuid4()) if vm is not None else ""
    elif method.name in ("Heartbeat", "HeartbeatStream"):
        to_proto(node, msg.node)
    elif method.name == "ReportStatus":
        msg.node_id = node.id
        msg.report.vm_id = vm_id
        msg.report.exit_kind = agent_pb2.VM_EXIT_KIND_CRASHED
    elif "vm_id" in fields:
        msg.vm_id = vm_id
    if "disk_id" in fields:
        msg.disk_id = "root"
    return msg  # type: ignore[no-any-return]


async def call(channel: grpc.aio.Channel, method: Any, request: Message) -> str:
    """Call `method`; which of SERVED, DENIED, HANDSHAKE happened.

    A client-streaming call whose request write lands after the server has already answered (a refusal at the
    stream's open) is reported by grpc.aio's client as INTERNAL "Internal error from Core", overwriting the
    server's status (grpc/grpc#36066). The server then answered before it read a message, so its answer does
    not depend on one: the call is made again with an empty stream, which has no write whose failure could
    overwrite the status.
    """
    outcome = await _call_once(channel, method, request)
    if outcome is CLIENT_WRITE_RACE:
        outcome = await _call_once(channel, method, None)
    assert outcome is not CLIENT_WRITE_RACE, f"{method.name}: an empty stream lost its status"
    return outcome


async def _call_once(channel: grpc.aio.Channel, method: Any, request: Message | None) -> str:
    """One call; `request` None sends a client stream with no message."""
    path = f"/{SERVICE.full_name}/{method.name}"
    out = message_factory.GetMessageClass(method.output_type).FromString
    kinds = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
             (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    rpc = kinds[(method.client_streaming, method.server_streaming)](
        path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=out)

    async def stream() -> AsyncIterator[Message]:
        if request is not None:
            yield request

    try:
        result = rpc(stream() if method.client_streaming else request, timeout=30)
        if method.server_streaming:
            async for _ in result:
                break
        else:
            await result
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
            return DENIED
        details = {k for k, _ in exc.trailing_metadata() or ()}
        if exc.code() == grpc.StatusCode.UNAVAILABLE and "grpc-status-details-bin" not in details:
            return HANDSHAKE
        if (method.client_streaming and exc.code() == grpc.StatusCode.INTERNAL
                and "grpc-status-details-bin" not in details):
            return CLIENT_WRITE_RACE
    return SERVED


def expected_on_agent(cred: str) -> str:
    return {"control-plane": SERVED, "none": HANDSHAKE, "self-signed": HANDSHAKE}.get(cred, DENIED)


@pytest.mark.parametrize("cred", CREDS)
async def test_agent_serves_only_the_control_planes_certificate(
    tls: TlsCluster, api: PlasmaClient, running: VirtualMachine, cred: str
) -> None:
    node = await api.get_node(NODE_A)
    pem = pem_of(tls, cred, identity.control_plane())
    target = None if cred == "control-plane" else running  # refused callers aim at the real VM
    outcomes = {}
    async with tls.agent_channel(pem) as channel:
        for method in SERVICE.methods:
            outcomes[method.name] = await call(channel, method, request_for(method, target, node))
    want = expected_on_agent(cred)
    assert outcomes == {m.name: want for m in SERVICE.methods}
    after = await api.get_vm(ORG, PROJECT, running.id)
    assert after.state == VmState.RUNNING and after.status.host_pid == running.status.host_pid
    assert running.status.host_pid is not None and is_running(running.status.host_pid)


def expected_on_api(cred: str, method: str, named: str) -> str:
    if cred in ("none", "self-signed"):
        return HANDSHAKE  # the API requires a certificate from the cluster CA
    if method not in CP_HALF:
        return SERVED  # UNIMPLEMENTED: served by agents, not here
    return SERVED if cred == named else DENIED


@pytest.mark.parametrize("cred", [*CREDS, "client"])
async def test_control_plane_takes_reports_only_from_the_named_nodes_certificate(
    tls: TlsCluster, api: PlasmaClient, running: VirtualMachine, cred: str
) -> None:
    """Reports name node-b (capacity 0: nothing is ever placed there) and speak of node-a's VM."""
    node_b = Node(id=NODE_B, name=NODE_B, capacity=NodeCapacity(), agent_address="127.0.0.1:1")
    pem = pem_of(tls, cred, identity.node(NODE_B))
    outcomes = {}
    async with tls.api_channel(pem) as channel:
        for method in SERVICE.methods:
            outcomes[method.name] = await call(channel, method, request_for(method, running, node_b))
    assert outcomes == {m.name: expected_on_api(cred, m.name, NODE_B) for m in SERVICE.methods}
    after = await api.get_vm(ORG, PROJECT, running.id)
    assert after.state == VmState.RUNNING and after.node_id == NODE_A  # node-b's CRASHED moved nothing


BEATS = ("Heartbeat", "HeartbeatStream")  # a unary call, and a stream's first message


async def heartbeat(tls: TlsCluster, cred: str, node: Node, rpc: str = "Heartbeat") -> str:
    method = SERVICE.methods_by_name[rpc]
    async with tls.api_channel(pem_of(tls, cred, identity.node(node.id))) as channel:
        return await call(channel, method, request_for(method, None, node))


async def test_made_up_node_is_refused(tls: TlsCluster, api: PlasmaClient) -> None:
    ghost = Node(id="node-ghost", capacity=NodeCapacity(64, 65536, 1000), agent_address="127.0.0.1:1")
    for rpc in BEATS:
        assert await heartbeat(tls, NODE_A, ghost, rpc) == DENIED, rpc
        assert await heartbeat(tls, "self-signed", ghost, rpc) == HANDSHAKE, rpc
    with pytest.raises(NodeNotFound):
        await api.get_node("node-ghost")


async def test_agent_address_changes_only_with_the_nodes_certificate(tls: TlsCluster, api: PlasmaClient) -> None:
    real = await api.get_node(NODE_A)
    rerouted = Node(id=NODE_A, capacity=real.capacity, agent_address="127.0.0.1:1")
    for cred in ("node-b", "control-plane", "client"):
        for rpc in BEATS:
            assert await heartbeat(tls, cred, rerouted, rpc) == DENIED, (cred, rpc)
    assert (await api.get_node(NODE_A)).agent_address == real.agent_address


async def test_allocatable_is_computed_from_capacity(tls: TlsCluster, api: PlasmaClient) -> None:
    real = await api.get_node(NODE_A)
    inflated = Node(id=NODE_A, name=NODE_A, capacity=real.capacity, hypervisors=real.hypervisors,
                    allocatable=NodeCapacity(60000, 10**9, 10**6), agent_address=real.agent_address)
    assert await heartbeat(tls, NODE_A, inflated) == SERVED  # node-a's own certificate: accepted …
    assert (await api.get_node(NODE_A)).allocatable == real.capacity  # … but allocatable is ours (ratios 1.0)


async def test_crash_report_from_another_node_moves_nothing(
    tls: TlsCluster, api: PlasmaClient, running: VirtualMachine
) -> None:
    method = SERVICE.methods_by_name["ReportStatus"]
    for claimed in (NODE_A, NODE_B):
        async with tls.api_channel(tls.pem(f"node-{NODE_B}")) as channel:
            forged = request_for(method, running, Node(id=claimed))
            assert await call(channel, method, forged) == (DENIED if claimed == NODE_A else SERVED)
    after = await api.get_vm(ORG, PROJECT, running.id)
    assert after.state == VmState.RUNNING and after.status.last_error is None
    assert running.status.host_pid is not None and is_running(running.status.host_pid)


async def test_an_address_pointing_at_another_nodes_agent_fails_the_handshake(
    tls: TlsCluster, api: PlasmaClient
) -> None:
    """node-b, with its own certificate, registers node-a's agent address; a VM placed on node-b never
    reaches node-a's agent: the control plane dials expecting node-b's certificate and gets node-a's."""
    real = await api.get_node(NODE_A)
    decoy = Node(id=NODE_B, name=NODE_B, capacity=real.capacity, hypervisors=real.hypervisors,
                 agent_address=real.agent_address)
    assert await heartbeat(tls, NODE_B, decoy) == SERVED
    await api.cordon_node(NODE_A)  # so the scheduler picks node-b
    try:
        with pytest.raises(PlasmaError):
            await api.create_vm("tls-decoy", ORG, PROJECT, tiny_spec())
    finally:
        await api.uncordon_node(NODE_A)
        await api.cordon_node(NODE_B)
    placed = [vm for vm in await api.list_all_vms(ORG, PROJECT) if vm.name == "tls-decoy"]
    method = SERVICE.methods_by_name["GetVmStatus"]
    async with tls.agent_channel(tls.pem("control-plane")) as channel:
        for vm in placed:  # whatever record the failed create left, node-a's agent never heard of it
            status = agent_pb2.GetVmStatusRequest(vm_id=vm.id)
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await channel.unary_unary(f"/{SERVICE.full_name}/{method.name}",
                                          request_serializer=lambda m: m.SerializeToString())(status, timeout=30)
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert [vm.state for vm in placed] == [VmState.ERROR], placed
    assert NODE_B in (placed[0].status.last_error or ""), placed[0].status


async def test_api_requires_the_cluster_ca(tls: TlsCluster) -> None:
    no_cert = ClientTls(str(tls.pki / "ca.pem"))
    async with await PlasmaClient.connect(f"https://{tls.cluster.api}", tls=no_cert) as client:
        with pytest.raises(ConnectionFailed):
            await client.list_nodes()
    async with await PlasmaClient.connect(tls.cluster.api) as plain:  # plaintext to a TLS port
        with pytest.raises(ConnectionFailed):
            await plain.list_nodes()


def test_cli_over_tls(tls: TlsCluster) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLASMAVMC_") or k == "PLASMAVMC_CREDENTIALS"}
    env.update(PLASMAVMC_CERT_FILE=str(tls.pki / "client.pem"), PLASMAVMC_KEY_FILE=str(tls.pki / "client.key"))
    argv = [str(BIN / "plasmavmc"), "--addr", f"https://{tls.cluster.api}", "--ca", str(tls.pki / "ca.pem"),
            "node", "list"]
    listed = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert listed.returncode == 0, listed.stderr
    assert NODE_A in listed.stdout
    env.pop("PLASMAVMC_CERT_FILE")
    env.pop("PLASMAVMC_KEY_FILE")
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert refused.returncode == 1 and "cannot reach" in refused.stderr
    config = tls.cluster.root / "client.toml"  # the same three files from the client config instead
    config.write_text(f'endpoints = ["https://{tls.cluster.api}"]\nca_file = "{tls.pki}/ca.pem"\n'
                      f'cert_file = "{tls.pki}/client.pem"\nkey_file = "{tls.pki}/client.key"\n')
    argv = [str(BIN / "plasmavmc"), "--config", str(config), "node", "list"]
    configured = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert configured.returncode == 0 and NODE_A in configured.stdout, configured.stderr




async def test_server_only_tls_needs_just_the_ca(tmp_path: Path, guest_dir: Path) -> None:
    """`[server.tls]` without `ca_file`: clients verify the server with the CA and present nothing; agent
    reports are then not authenticated, and the server says so."""
    pki = tmp_path / "pki"
    certs.init(pki)
    server_cfg, _, api_addr, _, _ = write_configs(tmp_path, guest_dir, "unused")
    with server_cfg.open("a") as f:
        f.write(f'[server.tls]\ncert_file = "{pki}/api.pem"\nkey_file = "{pki}/api.key"\n')
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(server_cfg)], tmp_path / "s.log")
    server.start()
    try:
        async with await PlasmaClient.connect(f"https://{api_addr}", tls=ClientTls(str(pki / "ca.pem"))) as good:
            deadline = time.monotonic() + 60
            while True:  # poll the starting server with a deadline
                try:
                    assert await good.list_nodes() == []
                    break
                except ConnectionFailed:
                    assert time.monotonic() < deadline, (tmp_path / "s.log").read_text()[-2000:]
                    await asyncio.sleep(0.2)
        rogue = tmp_path / "rogue.pem"
        rogue.write_bytes(control_plane_claim().cert)
        for tls in (None, ClientTls(str(rogue))):
            async with await PlasmaClient.connect(api_addr, tls=tls) as bad:
                with pytest.raises(ConnectionFailed):
                    await bad.list_nodes()
        assert "agent heartbeats and reports are NOT authenticated" in (tmp_path / "s.log").read_text()
    finally:
        server.stop()
