"""QuotaService methods of `PlasmaClient`: limits and counted usage of an org or a project."""

from __future__ import annotations

from plasmavmc.client.base import ClientBase
from plasmavmc.types.quota import Quota, ResourceLimits
from plasmavmc.v1 import quota_pb2
from plasmavmc.wire.convert import from_proto, to_proto


class QuotaMixin(ClientBase):
    """`plasmavmc.v1.QuotaService`."""

    async def get_quota(self, org_id: str, project_id: str = "") -> Quota:
        """The limits and usage of an org (project_id "") or of one project."""
        request = quota_pb2.GetQuotaRequest(org_id=org_id, project_id=project_id)
        return from_proto(Quota, await self._unary(self._quota_stub.GetQuota, request))

    async def set_quota(self, org_id: str, project_id: str, limits: ResourceLimits) -> Quota:
        """Replace the scope's limits (None: unlimited); usage is kept."""
        request = quota_pb2.SetQuotaRequest(
            org_id=org_id, project_id=project_id, limits=to_proto(limits, quota_pb2.ResourceLimits())
        )
        return from_proto(Quota, await self._unary(self._quota_stub.SetQuota, request))
