"""`plasmavmc.v1.QuotaService`: read and set the limits of an org or a project, with counted usage."""

from __future__ import annotations

from typing import Any

from plasmavmc.core import quotas
from plasmavmc.core.context import Core
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.v1 import quota_pb2, quota_pb2_grpc
from plasmavmc.wire.convert import from_proto, to_proto
from plasmavmc.wire.edge import ServicerContext, unary

Ctx = ServicerContext


class QuotaServicer(quota_pb2_grpc.QuotaServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core

    @unary
    async def GetQuota(self, request: quota_pb2.GetQuotaRequest, context: Ctx) -> Any:
        quota = await quotas.get(self.core.store, request.org_id, request.project_id)
        return to_proto(quota, quota_pb2.Quota())

    @unary
    async def SetQuota(self, request: quota_pb2.SetQuotaRequest, context: Ctx) -> Any:
        limits = from_proto(ResourceLimits, request.limits)
        quota = await quotas.set_limits(self.core.store, request.org_id, request.project_id, limits)
        return to_proto(quota, quota_pb2.Quota())
