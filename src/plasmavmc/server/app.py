"""Wiring of the control plane: store, image catalog, core, gRPC services, HTTP, reconcile loop.

`run()` starts everything from validated `ServerSettings` and serves until cancelled or signalled;
a part that cannot start (store, port, seed image) stops the process with a clear error before it
serves anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from plasmavmc.api.agent_reports import AgentReportServicer
from plasmavmc.api.auth import AuthInterceptor
from plasmavmc.api.iam_service import IamServicer
from plasmavmc.api.image_service import ImageServicer
from plasmavmc.api.network_service import NetworkServicer
from plasmavmc.api.node_service import NodeServicer
from plasmavmc.api.quota_service import QuotaServicer
from plasmavmc.api.security_group_service import SecurityGroupServicer
from plasmavmc.api.vm_service import VmServicer
from plasmavmc.config.schema import package_version
from plasmavmc.config.server import ServerSettings
from plasmavmc.core.agents import AgentPool
from plasmavmc.core.context import Core
from plasmavmc.core.images import ImageService
from plasmavmc.core.loops.event_retention import Retention
from plasmavmc.core.loops.runner import run_loops
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.core.nodes.registry import NodeRegistry, Overcommit
from plasmavmc.core.vms import events as vm_events
from plasmavmc.core.vms.disks import VmDisks
from plasmavmc.core.vms.reads import VmReads
from plasmavmc.grpc_tls import channel_credentials, server_credentials
from plasmavmc.iam.gate import Iam
from plasmavmc.images.backends import open_image_store, staging_dir
from plasmavmc.images.catalog import ImageCatalog
from plasmavmc.images.fetch import UrlPolicy
from plasmavmc.images.ingest import MAX_IMAGE_BYTES, IngestLimits
from plasmavmc.images.seed import seed_guest_dir
from plasmavmc.observe.grpc_services import HealthAndReflection
from plasmavmc.observe.interceptor import ObservingInterceptor
from plasmavmc.observe.metrics import BUILD_INFO
from plasmavmc.scheduler import build as build_scheduler
from plasmavmc.sdnotify import notify
from plasmavmc.server import gc_policy
from plasmavmc.server.console_ws import start_console
from plasmavmc.server.http import start_http
from plasmavmc.server.iam_wiring import build_iam
from plasmavmc.server.leader import Leadership, leadership_for
from plasmavmc.shutdown import until_terminated
from plasmavmc.store.base import Store
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.store.etcd_conn import EtcdTls
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.vm import HypervisorType
from plasmavmc.v1 import (
    agent_pb2_grpc,
    iam_pb2_grpc,
    image_pb2_grpc,
    network_pb2_grpc,
    node_pb2_grpc,
    quota_pb2_grpc,
    vm_pb2,
)
from plasmavmc.wire.chain import Layer, MethodChain
from plasmavmc.wire.guard import RequestGuard
from plasmavmc.wire.replies import add_servicer

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL = 5
RECONCILE_INTERVAL = 2.0
INDEX_FIRST = 10.0  # seconds a start waits for the state index before serving (and the watched VM copies)
LISTED_WAIT = 120.0  # seconds the GC policy waits for the GetVm copies to be listed before freezing anyway


async def _after_index(index: VmStates, then: Callable[[], Awaitable[None]]) -> None:
    """Run `then` once the VM state index is built (at most `INDEX_FIRST` seconds after the start): the
    gauges and the leader's loops wait for the index, while GetVm answers from the store until its own
    copy is listed, so the index gets the start's CPU first (both list every VM record)."""
    await index.until_ready(INDEX_FIRST)
    await then()


async def _loaded(index: VmStates, reads: VmReads) -> None:
    """Until start-up's loading is done: the state index built and the GetVm copies listed (each
    bounded), what the GC policy then freezes (`server/gc_policy.py`)."""
    await index.until_ready(INDEX_FIRST)
    await reads.listed(LISTED_WAIT)


async def open_store(settings: ServerSettings) -> Store:
    if settings.store.backend == "etcd":
        tls = settings.store.tls
        etcd_tls = None if tls is None else EtcdTls(tls.ca_file, tls.cert_file, tls.key_file)
        return await EtcdStore.open(settings.store.etcd_endpoints, tls=etcd_tls)
    Path(settings.store.path).parent.mkdir(parents=True, exist_ok=True)
    return await SqliteStore.open(settings.store.path)


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def agent_credentials(settings: ServerSettings) -> grpc.ChannelCredentials | None:
    tls = settings.agents.tls
    if tls is None:
        log.warning("calls to agents are plain gRPC: anyone who can reach an agent's port can drive it "
                    "(set [agents.tls] and the agents' [agent.tls] ca_file for mutual TLS)")
        return None
    return channel_credentials(tls)


def reports_authenticated(settings: ServerSettings) -> bool:
    """Agent reports are checked against node certificates only when the API requires client certs."""
    tls = settings.server.tls
    if tls is None or not tls.mutual:
        log.warning("agent heartbeats and reports are NOT authenticated (no [server.tls] ca_file): any caller "
                    "of %s can register nodes; keep it on loopback or set up mutual TLS", settings.server.addr)
        return False
    return True


async def build_core(settings: ServerSettings) -> Core:
    store = await open_store(settings)
    catalog = ImageCatalog(store)
    files = await open_image_store(settings.image_store)
    for seed in settings.image_store.seed_dirs:
        await seed_guest_dir(catalog, files, Path(seed))
    sched = settings.scheduler
    overcommit = Overcommit(sched.cpu_overcommit_ratio, sched.memory_overcommit_ratio, sched.storage_overcommit_ratio)
    nodes = NodeRegistry(store, settings.agents.heartbeat_timeout_seconds, overcommit)
    vm_events.ENABLED = settings.events.enabled
    return Core(
        store=store, catalog=catalog, image_files=files, nodes=nodes, agents=AgentPool(agent_credentials(settings)),
        scheduler=build_scheduler(sched),
        event_retention=Retention(settings.events.max_age_seconds, settings.events.max_per_vm),
    )


def ingest_limits(settings: ServerSettings) -> IngestLimits:
    """The `[images]` bounds on image ingest; URL imports may never reach this server's own addresses."""
    conf = settings.images
    policy = UrlPolicy.of(conf.url_allow_cidrs, conf.url_timeout_seconds, conf.url_max_redirects, MAX_IMAGE_BYTES)
    return IngestLimits(conf.max_virtual_size_gib, policy)


API_SERVICES = ("plasmavmc.v1.VmService", "plasmavmc.v1.ImageService", "plasmavmc.v1.NodeService",
                "plasmavmc.v1.QuotaService", "plasmavmc.v1.IamService", "plasmavmc.agent.v1.AgentService")


def grpc_server(core: Core, settings: ServerSettings, iam: Iam, auth: AuthInterceptor | None = None,
                reports: AgentReportServicer | None = None) -> tuple[grpc.aio.Server, HealthAndReflection]:
    """Every service (health and reflection too) on one gRPC server, each method layered once
    (`wire/chain.py`) and served through one generic handler; `auth` replaces the authentication layer
    (benchmarks only). The observing layer (request ids, log fields, RPC metrics) comes first, so it sees
    refusals too; then the request guard: authorization reads fields of a request that must be decoded
    and sane."""
    observing: list[Layer] = [ObservingInterceptor()] if settings.server.rpc_metrics else []
    chain = MethodChain([*observing, RequestGuard(), auth or AuthInterceptor(iam.gate, iam.audit)])
    iam_pb2_grpc.add_IamServiceServicer_to_server(IamServicer(core, iam), chain)
    hypervisor = HypervisorType(settings.scheduler.default_hypervisor)
    add_servicer(chain, VmServicer(core, hypervisor), vm_pb2.DESCRIPTOR.services_by_name["VmService"])
    images = ImageService(core.store, core.catalog, core.image_files, staging_dir(settings.image_store),
                          VmDisks(core), owner=core.server_id, limits=ingest_limits(settings))
    image_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(core, images), chain)
    node_pb2_grpc.add_NodeServiceServicer_to_server(NodeServicer(core), chain)
    quota_pb2_grpc.add_QuotaServiceServicer_to_server(QuotaServicer(core), chain)
    network_pb2_grpc.add_NetworkServiceServicer_to_server(NetworkServicer(core), chain)
    network_pb2_grpc.add_SecurityGroupServiceServicer_to_server(SecurityGroupServicer(core), chain)
    reports = reports or AgentReportServicer(core, HEARTBEAT_INTERVAL, reports_authenticated(settings))
    agent_pb2_grpc.add_AgentServiceServicer_to_server(reports, chain)
    health = HealthAndReflection(chain, API_SERVICES)
    server = grpc.aio.server()
    chain.serve_on(server)
    if settings.server.tls is not None:
        server.add_secure_port(settings.server.addr, server_credentials(settings.server.tls))
    else:
        server.add_insecure_port(settings.server.addr)
    return server, health


async def registered(leadership: Leadership, task: asyncio.Task[None]) -> None:
    """Wait until this replica is a registered member (or its election task failed: re-raise that)."""
    joined = asyncio.ensure_future(leadership.registered())
    await asyncio.wait([joined, task], return_when=asyncio.FIRST_COMPLETED)
    if not joined.done():
        joined.cancel()
        await task  # raises whatever stopped the election


async def run(settings: ServerSettings) -> None:
    core = await build_core(settings)
    iam = await build_iam(core.store, settings.iam)
    reports = AgentReportServicer(core, HEARTBEAT_INTERVAL, reports_authenticated(settings))
    server, health = grpc_server(core, settings, iam, reports=reports)
    leadership = leadership_for(core.store, core.server_id, settings.store.lease_ttl_seconds)
    # one watched index of VM states per replica: its gauges, and the leader's reconcile when it leads
    vm_states = VmStates(core.store, RECONCILE_INTERVAL)
    states_task = asyncio.create_task(vm_states.run(), name="vm-states")
    core.nodes.vm_index = vm_states  # also the per-node index of VMs (NOT_READY flags, drains)
    core.vm_reads = VmReads(core.store, RECONCILE_INTERVAL)  # GetVm from watched copies
    reads_task = asyncio.create_task(_after_index(vm_states, core.vm_reads.run), name="vm-reads")
    gc_task = asyncio.create_task(gc_policy.run(_loaded(vm_states, core.vm_reads)), name="gc-policy")
    images_task = asyncio.create_task(core.catalog.watch(RECONCILE_INTERVAL), name="image-reads")  # creates' lookups
    loop_task = asyncio.create_task(
        leadership.run(lambda: run_loops(core, leadership.live_servers, RECONCILE_INTERVAL, vm_states))
    )
    await registered(leadership, loop_task)
    memory_task = asyncio.create_task(core.reports.run(core.store), name="report-memory")
    audit_task = asyncio.create_task(iam.audit.run(), name="audit-log")
    BUILD_INFO.labels(package_version(), "server").set(1)
    # the VM state index first (bounded): a start answers nothing until its gauges and per-node index are
    # right, so the index is not built against every agent's heartbeat and resync at once (issue 19)
    await vm_states.until_ready(INDEX_FIRST)
    await server.start()
    core.nodes.liveness.grant_grace()  # agents can reach this replica only from now on
    await health.set_serving(True)
    http = await start_http(core, *split_addr(settings.server.metrics_addr), leadership=leadership,
                            vm_states=vm_states)
    console = await start_console(core, iam, *split_addr(settings.server.console_addr))
    log.info("plasmavmc-server serving gRPC on %s, HTTP on %s, consoles on %s", settings.server.addr,
             settings.server.metrics_addr, settings.server.console_addr)
    notify(f"READY=1\nSTATUS=serving gRPC on {settings.server.addr}")  # store open, member registered, serving
    try:
        await until_terminated()
    finally:
        notify("STOPPING=1")
        log.info("plasmavmc-server stopping")
        await health.set_serving(False)
        for task in (loop_task, memory_task, audit_task, states_task, reads_task, gc_task, images_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        reports.end_streams()  # agents' heartbeat streams never end by themselves
        await server.stop(grace=2)
        await http.cleanup()
        await console.cleanup()
        await core.agents.close()
        await core.store.close()
        await core.image_files.close()
