"""gRPC health checking (`grpc.health.v1.Health`) and server reflection on a server's port, so load
balancers and `grpcurl` work against the API and agent ports alike.

Health answers SERVING for "" and for every service registered here; `set_serving(False)` (on
shutdown) answers NOT_SERVING so balancers drain the replica before it goes. Both register on anything
that takes a generated servicer (a `grpc.aio.Server`, or the API server's `wire/chain.MethodChain`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc


class HealthAndReflection:
    def __init__(self, server: Any, services: Sequence[str]) -> None:
        self.health = health.aio.HealthServicer()
        self.services = ("", *services)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (*services, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(names), server)

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self.services:
            await self.health.set(name, status)
