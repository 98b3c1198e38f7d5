"""Wiring of the control plane: store, image catalog, core, gRPC services, HTTP, reconcile loop.

`run()` starts everything from validated `ServerSettings` and serves until cancelled or signalled;
a part that cannot start (store, port, seed image) stops the process with a clear error before it
serves anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import grpc

from plasmavmc.agent.v1 import agent_pb2_grpc
from plasmavmc.api.agent_reports import AgentReportServicer
from plasmavmc.api.image_service import ImageServicer
from plasmavmc.api.node_service import NodeServicer
from plasmavmc.api.vm_service import VmServicer
from plasmavmc.config.server import ServerSettings
from plasmavmc.core.agents import AgentPool
from plasmavmc.core.context import Core
from plasmavmc.core.nodes import NodeRegistry
from plasmavmc.core.reconcile import reconcile_forever
from plasmavmc.errors import Unimplemented
from plasmavmc.grpc_tls import server_credentials
from plasmavmc.images.catalog import ImageCatalog
from plasmavmc.images.local import LocalImageStore
from plasmavmc.images.seed import seed_guest_dir
from plasmavmc.server.http import start_http
from plasmavmc.store.base import Store
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.vm import HypervisorType
from plasmavmc.v1 import image_pb2_grpc, node_pb2_grpc, vm_pb2_grpc

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL = 5
RECONCILE_INTERVAL = 2.0


async def open_store(settings: ServerSettings) -> Store:
    if settings.store.backend != "sqlite":
        raise Unimplemented(f"store backend {settings.store.backend!r} (etcd lands with the cluster-state issue)")
    Path(settings.store.path).parent.mkdir(parents=True, exist_ok=True)
    return await SqliteStore.open(settings.store.path)


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


async def build_core(settings: ServerSettings) -> Core:
    if settings.image_store.backend != "local":
        raise Unimplemented(f"image store backend {settings.image_store.backend!r} (S3 lands with the images issue)")
    store = await open_store(settings)
    catalog = ImageCatalog(store)
    files = LocalImageStore(Path(settings.image_store.path))
    for seed in settings.image_store.seed_dirs:
        await seed_guest_dir(catalog, files, Path(seed))
    nodes = NodeRegistry(store, settings.agents.heartbeat_timeout_seconds)
    return Core(store=store, catalog=catalog, image_files=files, nodes=nodes, agents=AgentPool())


def grpc_server(core: Core, settings: ServerSettings) -> grpc.aio.Server:
    server = grpc.aio.server()
    hypervisor = HypervisorType(settings.scheduler.default_hypervisor)
    vm_pb2_grpc.add_VmServiceServicer_to_server(VmServicer(core, hypervisor), server)
    image_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(core), server)
    node_pb2_grpc.add_NodeServiceServicer_to_server(NodeServicer(core), server)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentReportServicer(core, HEARTBEAT_INTERVAL), server)
    if settings.server.tls is not None:
        server.add_secure_port(settings.server.addr, server_credentials(settings.server.tls))
    else:
        server.add_insecure_port(settings.server.addr)
    return server


async def run(settings: ServerSettings) -> None:
    core = await build_core(settings)
    server = grpc_server(core, settings)
    await server.start()
    http = await start_http(core, *split_addr(settings.server.metrics_addr))
    loop_task = asyncio.create_task(reconcile_forever(core, RECONCILE_INTERVAL))
    log.info("plasmavmc-server serving gRPC on %s, HTTP on %s", settings.server.addr, settings.server.metrics_addr)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("plasmavmc-server stopping")
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task
        await server.stop(grace=2)
        await http.cleanup()
        await core.agents.close()
        await core.store.close()
