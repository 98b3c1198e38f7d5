"""gRPC health checking (`grpc.health.v1.Health`) and server reflection on a server's port, so load
balancers and `grpcurl` work against the API and agent ports alike.

Health answers SERVING for "" and for every service registered here; `set_serving(False)` (on
shutdown) answers NOT_SERVING so balancers drain the replica before it goes.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


class HealthAndReflection:
    def __init__(self, server: grpc.aio.Server, services: Sequence[str]) -> None:
        self.health = health.aio.HealthServicer()
        self.services = ("", *services)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (*services, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self.services:
            await self.health.set(name, status)
