"""Wiring of the node agent: backends, image cache, VM table (re-adopted), AgentService, heartbeats.

Start-up order matters for "lose no VM": running VMs are re-adopted before the agent serves or
heartbeats, so its first heartbeat already reports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import grpc
from prometheus_client import REGISTRY

from plasmavmc.agent import heartbeats
from plasmavmc.agent.http import start_agent_http
from plasmavmc.agent.image_cache import ImageCache
from plasmavmc.agent.metrics import AgentMetrics
from plasmavmc.agent.node import describe_node
from plasmavmc.agent.ports import NodePorts
from plasmavmc.agent.reporter import Reporter
from plasmavmc.agent.service import AgentServicer
from plasmavmc.agent.vms import NodeVms
from plasmavmc.config.agent import AgentSettings
from plasmavmc.config.schema import package_version
from plasmavmc.errors import PlasmaError
from plasmavmc.grpc_tls import channel_credentials, server_credentials
from plasmavmc.hypervisor.registry import HypervisorRegistry, from_settings
from plasmavmc.network.registry import make_provider
from plasmavmc.observe import gcpauses
from plasmavmc.observe.grpc_services import HealthAndReflection
from plasmavmc.observe.interceptor import ObservingInterceptor
from plasmavmc.observe.metrics import BUILD_INFO
from plasmavmc.sdnotify import notify
from plasmavmc.shutdown import until_terminated
from plasmavmc.types.vm import VmStatus
from plasmavmc.v1 import agent_pb2_grpc
from plasmavmc.wire.chain import MethodChain
from plasmavmc.wire.guard import RequestGuard
from plasmavmc.wire.peer import control_plane_only

log = logging.getLogger(__name__)


async def heartbeat_forever(
    settings: AgentSettings, registry: HypervisorRegistry, vms: NodeVms, reporter: Reporter, metrics: AgentMetrics
) -> None:
    interval = float(settings.agent.heartbeat_interval_seconds)
    deltas = heartbeats.DeltaState()
    while True:
        statuses: dict[str, VmStatus] = {}
        failed = True
        try:
            # stamped before any status is read: the control plane judges a report against the record's
            # last change by this time, and a status read before a start committed RUNNING, stamped
            # after it, would pass for news (the VM marked STOPPED while it runs)
            observed_at = int(time.time())
            node = describe_node(settings, registry)
            for vm_id in list(vms.handles):
                with contextlib.suppress(PlasmaError):
                    statuses[vm_id] = await vms.status(vm_id)
            node = type(node)(**{**node.__dict__, "last_heartbeat": observed_at})
            metrics.note(statuses, delivered=False)
            await heartbeats.send(reporter, node, statuses, deltas, vms.exit_kind)
            metrics.note(statuses, delivered=True)
            failed = False
        except PlasmaError as err:
            log.warning("heartbeat failed: %s", err)
        except Exception:
            log.exception("heartbeat failed")
        await asyncio.sleep(heartbeats.next_beat(interval, failed))


def endpoints(settings: AgentSettings) -> list[str]:
    eps = [settings.agent.control_plane, *settings.agent.control_planes]
    return list(dict.fromkeys(eps))


def agent_layers(settings: AgentSettings) -> MethodChain:
    """The AgentService's per-method layers (observing, the caller's certificate, the request guard), each
    method layered once and served through one generic handler (`wire/chain.py`: no interceptor coroutine
    and no wait over every registered method per call): with `[agent.tls] ca_file`, only the control
    plane's certificate may call."""
    tls = settings.agent.tls
    if tls is not None and tls.mutual:
        return MethodChain([ObservingInterceptor(), control_plane_only(), RequestGuard()])
    log.warning("the AgentService on %s accepts any caller (no [agent.tls] ca_file): keep it on loopback "
                "or set up mutual TLS", settings.agent.addr)
    return MethodChain([ObservingInterceptor(), RequestGuard()])


async def run(settings: AgentSettings) -> None:
    gcpauses.install()  # every collector pass timed (`plasmavmc_gc_pause_seconds`)
    registry = from_settings(settings)
    credentials = channel_credentials(settings.agent.tls) if settings.agent.tls else None
    reporter = Reporter(endpoints(settings), credentials)
    cache_bytes = settings.storage.cache_size_gib * 1024**3
    cache = ImageCache(Path(settings.storage.image_cache_dir), reporter.channels, cache_bytes)
    cache.remove_partials()  # downloads a killed agent left half-done
    net = settings.network
    ports = NodePorts(make_provider(
        net.provider, Path(net.state_dir), net.bridge_name, net.underlay_address,
        overlay_endpoint=net.overlay_endpoint, ovs_endpoint=net.ovs_endpoint,
        integration_bridge=net.integration_bridge, external_cidr=net.external_cidr,
        external_gateway=net.external_gateway))
    await ports.restore()  # before adoption: running VMs find their taps plumbed
    vms = NodeVms(settings.agent.node_id, registry, cache, reporter, ports)
    await vms.adopt()
    for backend in registry.all():  # after adoption: what a backend runs for itself (a warm pool) is no VM
        await backend.open()
    cache.prune_pins(set(vms.handles))
    chain = agent_layers(settings)
    servicer = AgentServicer(vms)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, chain)
    health = HealthAndReflection(chain, ["plasmavmc.agent.v1.AgentService"])
    server = grpc.aio.server()
    chain.serve_on(server)
    metrics = AgentMetrics(settings.agent.node_id, cache)
    REGISTRY.register(metrics)
    BUILD_INFO.labels(package_version(), "agent").set(1)
    host, _, port = settings.agent.metrics_addr.rpartition(":")
    beat_every = float(settings.agent.heartbeat_interval_seconds)
    http = await start_agent_http(metrics, host.strip("[]"), int(port), beat_every)
    if settings.agent.tls is not None:
        server.add_secure_port(settings.agent.addr, server_credentials(settings.agent.tls))
    else:
        server.add_insecure_port(settings.agent.addr)
    await server.start()
    await health.set_serving(True)
    beat = asyncio.create_task(heartbeat_forever(settings, registry, vms, reporter, metrics))
    log.info(
        "plasmavmc-agent %s serving on %s (hypervisors: %s)",
        settings.agent.node_id,
        settings.agent.addr,
        ", ".join(h.value for h in registry.available()),
    )
    gcpauses.freeze_alive()  # start-up's objects (modules, grpc, adopted VMs) out of later full passes
    notify(f"READY=1\nSTATUS=node {settings.agent.node_id} serving on {settings.agent.addr}")
    try:
        await until_terminated()
    finally:
        await health.set_serving(False)
        notify("STOPPING=1")
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        await vms.close()
        for backend in registry.all():
            await backend.close()
        servicer.disarm()
        await server.stop(grace=2)
        await http.cleanup()
        REGISTRY.unregister(metrics)
        await reporter.close()
