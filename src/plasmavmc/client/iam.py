"""IamService methods of `PlasmaClient`: tenants, principals, bindings, credentials, tickets, audit."""

from __future__ import annotations

from dataclasses import dataclass

from plasmavmc.client.base import ClientBase
from plasmavmc.types.iam import AuditEntry, AuditFilter, Binding, Org, Principal, PrincipalKind, Project, Role
from plasmavmc.v1 import iam_pb2, vm_pb2


@dataclass(frozen=True)
class ConsoleTicket:
    ticket: str
    expires_at: int
    path: str  # the gateway path of the VM's console


def _binding(msg: iam_pb2.RoleBinding) -> Binding:
    return Binding(msg.principal_id, Role(msg.role), msg.org_id, msg.project_id)


def _binding_msg(b: Binding) -> iam_pb2.RoleBinding:
    return iam_pb2.RoleBinding(principal_id=b.principal_id, role=b.role.value, org_id=b.org_id,
                               project_id=b.project_id)


def _principal(msg: iam_pb2.Principal) -> Principal:
    return Principal(msg.id, PrincipalKind(msg.kind), msg.org_id, msg.display_name, msg.created_at)


class IamMixin(ClientBase):
    """`plasmavmc.v1.IamService`."""

    async def create_org(self, org_id: str, display_name: str = "") -> Org:
        msg = await self._unary(self._iam_stub.CreateOrg, iam_pb2.CreateOrgRequest(org_id=org_id,
                                                                               display_name=display_name))
        return Org(msg.id, msg.display_name, msg.created_at)

    async def list_orgs(self) -> list[Org]:
        resp = await self._unary(self._iam_stub.ListOrgs, iam_pb2.ListOrgsRequest())
        return [Org(o.id, o.display_name, o.created_at) for o in resp.orgs]

    async def create_project(self, org_id: str, project_id: str, display_name: str = "") -> Project:
        request = iam_pb2.CreateProjectRequest(org_id=org_id, project_id=project_id, display_name=display_name)
        msg = await self._unary(self._iam_stub.CreateProject, request)
        return Project(msg.org_id, msg.id, msg.display_name, msg.created_at)

    async def list_projects(self, org_id: str) -> list[Project]:
        resp = await self._unary(self._iam_stub.ListProjects, iam_pb2.ListProjectsRequest(org_id=org_id))
        return [Project(p.org_id, p.id, p.display_name, p.created_at) for p in resp.projects]

    async def create_principal(self, principal_id: str, org_id: str = "",
                               kind: PrincipalKind = PrincipalKind.USER, display_name: str = "") -> Principal:
        msg = iam_pb2.Principal(id=principal_id, kind=kind.value, org_id=org_id, display_name=display_name)
        made = await self._unary(self._iam_stub.CreatePrincipal, iam_pb2.CreatePrincipalRequest(principal=msg))
        return _principal(made)

    async def list_principals(self, org_id: str) -> list[Principal]:
        resp = await self._unary(self._iam_stub.ListPrincipals, iam_pb2.ListPrincipalsRequest(org_id=org_id))
        return [_principal(p) for p in resp.principals]

    async def create_binding(self, binding: Binding) -> Binding:
        return _binding(await self._unary(self._iam_stub.CreateBinding, _binding_msg(binding)))

    async def delete_binding(self, binding: Binding) -> None:
        await self._unary(self._iam_stub.DeleteBinding, _binding_msg(binding))

    async def list_bindings(self, org_id: str) -> list[Binding]:
        resp = await self._unary(self._iam_stub.ListBindings, iam_pb2.ListBindingsRequest(org_id=org_id))
        return [_binding(b) for b in resp.bindings]

    async def create_api_key(self, principal_id: str, ttl_seconds: int = 0, description: str = "") -> str:
        """A new API key for the principal (shown once: the server keeps only its hash)."""
        request = iam_pb2.CreateApiKeyRequest(principal_id=principal_id, ttl_seconds=ttl_seconds,
                                              description=description)
        return str((await self._unary(self._iam_stub.CreateApiKey, request)).api_key)

    async def issue_token(self, ttl_seconds: int = 0) -> tuple[str, int]:
        """(a signed token for the caller itself, its expiry in unix seconds)."""
        resp = await self._unary(self._iam_stub.IssueToken, iam_pb2.IssueTokenRequest(ttl_seconds=ttl_seconds))
        return str(resp.token), int(resp.expires_at)

    async def whoami(self) -> tuple[str, list[Binding]]:
        resp = await self._unary(self._iam_stub.WhoAmI, iam_pb2.WhoAmIRequest())
        return str(resp.principal_id), [_binding(b) for b in resp.bindings]

    async def rotate_signing_key(self) -> str:
        return str((await self._unary(self._iam_stub.RotateSigningKey, iam_pb2.RotateSigningKeyRequest())).kid)

    async def create_console_ticket(self, org_id: str, project_id: str, vm: str) -> ConsoleTicket:
        request = iam_pb2.CreateConsoleTicketRequest(vm=vm_pb2.VmRef(org_id=org_id, project_id=project_id,
                                                                     vm_id=vm))
        resp = await self._unary(self._iam_stub.CreateConsoleTicket, request)
        return ConsoleTicket(resp.ticket, resp.expires_at, resp.path)

    async def list_audit_events(self, flt: AuditFilter) -> list[AuditEntry]:
        request = iam_pb2.ListAuditEventsRequest(org_id=flt.org_id, project_id=flt.project_id,
                                                 principal=flt.principal, since_ns=flt.since_ns,
                                                 until_ns=flt.until_ns, limit=flt.limit)
        resp = await self._unary(self._iam_stub.ListAuditEvents, request)
        return [AuditEntry(e.time_ns, e.principal, e.action, e.org_id, e.project_id, e.resource, e.result,
                           e.source) for e in resp.events]
