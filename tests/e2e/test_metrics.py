"""Metrics, health and request ids end to end: two control-plane replicas on one etcd (a leads, b
follows), one agent, a real QEMU guest. Every call goes to the follower b; each series is scraped
before and after and must move as its event happened: on b's /metrics (gauges from the store, its
own counters), on the agent's /metrics (per-VM usage, image cache, agent RPCs), and the boot histogram
(summed over the replicas: the replica that stores the guest's ready time observes it) gains one boot
longer than the guest's own uptime at its readiness line. Also: gRPC health and reflection on the API
and agent ports, and the request id of an error answer."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import tomllib
import urllib.request
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from plasmavmc.client import PlasmaClient
from plasmavmc.config.server import VM_MEMORY_OVERHEAD_MIB
from plasmavmc.errors import VmNotFound
from plasmavmc.types.vm import BootSpec
from plasmavmc.v1 import vm_pb2, vm_pb2_grpc
from tests.conftest import ADMIN_CREDENTIAL, needs_qemu
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec
from tests.e2e.test_ha_failover import HaCluster, ha  # noqa: F401  (the two-replica fixture)
from tests.etcd import needs_etcd

pytestmark = [needs_qemu, needs_etcd]
Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]
DEADLINE = 120.0
MIB = 1024**2


def scrape(base: str) -> Sample:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: Sample = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def status_of(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return int(resp.status)


def value(sample: Sample, name: str, **labels: str) -> float:
    return sample.get((name, tuple(sorted(labels.items()))), 0.0)


def total(sample: Sample, name: str) -> float:
    return sum(v for (n, _), v in sample.items() if n == name)


async def until(check: Callable[[], bool], what: str, logs: Callable[[], str]) -> None:
    async with asyncio.timeout(DEADLINE):
        while not check():
            await asyncio.sleep(0.2)  # polling other processes' /metrics, with a deadline
    assert check(), what + logs()


def agent_http(cluster: HaCluster) -> tuple[str, str]:
    conf = tomllib.loads((cluster.root / "agent.toml").read_text())["agent"]
    return f"http://{conf['metrics_addr']}", conf["addr"]


async def test_series_move_on_follower_and_agent(ha: HaCluster) -> None:  # noqa: F811
    a, b = ha.replicas["a"], ha.replicas["b"]
    agent_base, _ = agent_http(ha)
    before_b, before_a, before_agent = scrape(b.http), scrape(a.http), scrape(agent_base)
    assert value(before_b, "plasmavmc_leader") == 0 and value(before_a, "plasmavmc_leader") == 1
    spec = dataclasses.replace(tiny_spec(), boot=BootSpec(kernel_args="loglevel=7 printk.time=1"))
    async with await PlasmaClient.connect(b.api) as client:
        vm = await client.create_vm("met-1", ORG, PROJECT, spec)
        await client.start_vm(ORG, PROJECT, vm.id)
        console = await console_until(client, vm.id, "PLASMAVMC-READY name=met-1 ", timeout=DEADLINE)
        # the kernel's last timestamp before the readiness line: the guest's uptime was at least this
        head = console[: console.index("PLASMAVMC-READY name=met-1 ")]
        uptime = max(float(t) for t in re.findall(r"\[\s*(\d+\.\d+)\]", head))

        def booted() -> bool:
            count = sum(total(scrape(r.http), "plasmavmc_vm_boot_seconds_count") for r in (a, b))
            return count == sum(total(s, "plasmavmc_vm_boot_seconds_count") for s in (before_a, before_b)) + 1

        await until(booted, "one boot observed", ha.logs)
        after_a, after_b = scrape(a.http), scrape(b.http)
        took = sum(total(s, "plasmavmc_vm_boot_seconds_sum") for s in (after_a, after_b)) - sum(
            total(s, "plasmavmc_vm_boot_seconds_sum") for s in (before_a, before_b))
        assert took > uptime > 0, (took, uptime)

        running = value(before_b, "plasmavmc_vms_total", state="running")
        assert value(after_b, "plasmavmc_vms_total", state="running") == running + 1  # the follower sees it
        for op in ("create", "start"):
            assert value(after_b, "plasmavmc_vm_operations_total", operation=op, result="ok") == value(
                before_b, "plasmavmc_vm_operations_total", operation=op, result="ok") + 1
        assert value(after_b, "plasmavmc_scheduler_latency_seconds_count") == value(
            before_b, "plasmavmc_scheduler_latency_seconds_count") + 1
        node = {"node": "node-1"}
        assert value(after_b, "plasmavmc_node_allocated_vcpus", **node) == value(
            before_b, "plasmavmc_node_allocated_vcpus", **node) + 1
        claimed = (256 + VM_MEMORY_OVERHEAD_MIB["kvm"]) * MIB  # guest memory + the per-VM overhead reserved
        assert value(after_b, "plasmavmc_node_allocated_memory_bytes", **node) == value(
            before_b, "plasmavmc_node_allocated_memory_bytes", **node) + claimed
        assert value(after_b, "plasmavmc_node_capacity_memory_bytes", **node) > 0
        assert value(after_b, "plasmavmc_node_capacity_storage_bytes", **node) > 0
        assert value(after_b, "plasmavmc_node_state", node="node-1", state="ready") == 1
        assert 0 <= value(after_b, "plasmavmc_agent_heartbeat_age_seconds", **node) < 20
        assert value(after_b, "plasmavmc_images", status="available") >= 1
        rpc = {"service": "plasmavmc.v1.VmService", "method": "CreateVm", "code": "OK"}
        assert value(after_b, "plasmavmc_grpc_server_handled_total", **rpc) == value(
            before_b, "plasmavmc_grpc_server_handled_total", **rpc) + 1
        assert any(n == "plasmavmc_build_info" and v == 1 for (n, _), v in after_b.items())

        def agent_saw_usage() -> bool:
            now = scrape(agent_base)
            return (value(now, "plasmavmc_vm_disk_read_bytes_total", vm_id=vm.id) > 0
                    and value(now, "plasmavmc_vm_memory_used_bytes", vm_id=vm.id) > 0)

        await until(agent_saw_usage, "per-VM usage on the agent", ha.logs)
        after_agent = scrape(agent_base)
        assert value(after_agent, "plasmavmc_agent_vms", state="running") == value(
            before_agent, "plasmavmc_agent_vms", state="running") + 1
        fetches = "plasmavmc_agent_image_cache_fetches_total"
        assert total(after_agent, fetches) > total(before_agent, fetches)
        assert value(after_agent, "plasmavmc_agent_image_cache_images") >= 1
        start = {"service": "plasmavmc.agent.v1.AgentService", "method": "StartVm", "code": "OK"}
        assert value(after_agent, "plasmavmc_grpc_server_handled_total", **start) == value(
            before_agent, "plasmavmc_grpc_server_handled_total", **start) + 1

        await client.stop_vm(ORG, PROJECT, vm.id)
        for replica in (a, b):  # both replicas' gauges follow the store
            await until(lambda r=replica: value(scrape(r.http), "plasmavmc_vms_total", state="running")  # type: ignore[misc]
                        == running, f"{replica.name}: running back to {running}", ha.logs)
        await client.delete_vm(ORG, PROJECT, vm.id)
        await until(lambda: value(scrape(agent_base), "plasmavmc_vm_memory_used_bytes", vm_id=vm.id) == 0
                    and not any(dict(k[1]).get("vm_id") == vm.id for k in scrape(agent_base)),
                    "the deleted VM's series gone from the agent", ha.logs)
        assert status_of(f"{agent_base}/ready") == 200


async def test_health_reflection_and_request_ids(ha: HaCluster) -> None:  # noqa: F811
    b = ha.replicas["b"]
    _, agent_grpc = agent_http(ha)
    for target, service in ((b.api, "plasmavmc.v1.VmService"), (agent_grpc, "plasmavmc.agent.v1.AgentService")):
        async with grpc.aio.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", service):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, (target, name)
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            replies = [r async for r in stub.ServerReflectionInfo(iter([request]), timeout=10)]
            names = {s.name for s in replies[0].list_services_response.service}
            assert {service, "grpc.health.v1.Health"} <= names, names

    token = ADMIN_CREDENTIAL.read_text().strip()
    async with grpc.aio.insecure_channel(b.api) as channel:
        call = vm_pb2_grpc.VmServiceStub(channel).GetVm(
            vm_pb2.GetVmRequest(vm=vm_pb2.VmRef(org_id=ORG, project_id=PROJECT, vm_id="no-such-vm")),
            metadata=[("x-request-id", "req-obs-42"), ("authorization", f"Bearer {token}")], timeout=10)
        try:
            await call
            raise AssertionError("GetVm of a missing VM answered")
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert "(request id req-obs-42)" in (err.details() or "")
            assert ("x-request-id", "req-obs-42") in tuple(err.trailing_metadata() or ())
    async with await PlasmaClient.connect(b.api) as client:  # a fresh id when the caller sends none
        try:
            await client.get_vm(ORG, PROJECT, "no-such-vm")
            raise AssertionError("GetVm of a missing VM answered")
        except VmNotFound as err:
            assert re.search(r"\(request id [0-9a-f]{16}\)$", err.message), err.message
    logged = (ha.root / "b.log").read_text()
    assert re.search(r"GetVm failed: VM_NOT_FOUND: .*request_id=req-obs-42.*principal=admin", logged), logged[-3000:]
