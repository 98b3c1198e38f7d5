"""`plasmavmc.v1.IamService`: tenants, principals, bindings, credentials, console tickets, audit.

The interceptor has authorized each call by its rule (`authz_rules.py`); what remains here is narrowing
lists to what the caller may see and the checks that depend on a stored record (an API key is made for
a principal of an org the caller administers, or for the caller itself).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from plasmavmc.api import caller
from plasmavmc.api.authz_rules import vm_scope
from plasmavmc.core.context import Core, VmRef
from plasmavmc.errors import InvalidArgument, NotFound
from plasmavmc.iam import apikeys
from plasmavmc.iam.audit import AuditFilter
from plasmavmc.iam.authn import CONSOLE_SCOPE
from plasmavmc.iam.gate import Iam
from plasmavmc.iam.model import Binding, Principal, PrincipalKind, Role
from plasmavmc.v1 import iam_pb2, iam_pb2_grpc, types_pb2
from plasmavmc.wire.edge import ServicerContext, unary

Ctx = ServicerContext
MAX_TOKEN_SECONDS = 7 * 86400
DEFAULT_TOKEN_SECONDS = 3600
TICKET_SECONDS = 60
CONSOLE_PATH = "/v1/orgs/{org}/projects/{project}/vms/{vm}/console"


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument("role", f"one of {', '.join(r.value for r in Role)}, got {value[:64]!r}") from None


def binding_of(msg: iam_pb2.RoleBinding) -> Binding:
    return Binding(msg.principal_id, _role(msg.role), msg.org_id, msg.project_id)


def binding_msg(b: Binding) -> iam_pb2.RoleBinding:
    return iam_pb2.RoleBinding(principal_id=b.principal_id, role=b.role.value, org_id=b.org_id,
                               project_id=b.project_id)


def principal_msg(p: Principal) -> iam_pb2.Principal:
    return iam_pb2.Principal(id=p.id, kind=p.kind.value, org_id=p.org_id, display_name=p.display_name,
                             created_at=p.created_at)


class IamServicer(iam_pb2_grpc.IamServiceServicer):
    def __init__(self, core: Core, iam: Iam) -> None:
        self.core = core
        self.iam = iam
        self.directory = iam.directory

    @unary
    async def CreateOrg(self, request: Any, context: Ctx) -> Any:
        org = await self.directory.create_org(request.org_id, request.display_name)
        return iam_pb2.Org(id=org.id, display_name=org.display_name, created_at=org.created_at)

    @unary
    async def ListOrgs(self, request: Any, context: Any) -> Any:
        mine = caller.current().caller.bindings
        orgs = [o for o in await self.directory.orgs() if any(b.touches(o.id) for b in mine)]
        return iam_pb2.ListOrgsResponse(
            orgs=[iam_pb2.Org(id=o.id, display_name=o.display_name, created_at=o.created_at) for o in orgs])

    @unary
    async def CreateProject(self, request: Any, context: Ctx) -> Any:
        p = await self.directory.create_project(request.org_id, request.project_id, request.display_name)
        return iam_pb2.Project(org_id=p.org_id, id=p.id, display_name=p.display_name, created_at=p.created_at)

    @unary
    async def ListProjects(self, request: Any, context: Ctx) -> Any:
        projects = await self.directory.projects(request.org_id)
        return iam_pb2.ListProjectsResponse(projects=[
            iam_pb2.Project(org_id=p.org_id, id=p.id, display_name=p.display_name, created_at=p.created_at)
            for p in projects])

    @unary
    async def CreatePrincipal(self, request: Any, context: Ctx) -> Any:
        msg = request.principal
        try:
            kind = PrincipalKind(msg.kind or "user")
        except ValueError:
            raise InvalidArgument("principal.kind", "user or service_account") from None
        made = await self.directory.create_principal(Principal(msg.id, kind, msg.org_id, msg.display_name))
        return principal_msg(made)

    @unary
    async def ListPrincipals(self, request: Any, context: Ctx) -> Any:
        found = [p for p in await self.directory.principals() if p.org_id == request.org_id]
        return iam_pb2.ListPrincipalsResponse(principals=[principal_msg(p) for p in found])

    @unary
    async def CreateBinding(self, request: Any, context: Ctx) -> Any:
        binding = binding_of(request)
        if binding.role is Role.SYSTEM_ADMIN or (binding.role is Role.ORG_ADMIN and binding.org_id):
            # granting an admin role takes the rights of the scope above (no self-promotion)
            await caller.require("plasmavmc:iam:create_binding", "", "", lambda: NotFound("platform"))
        return binding_msg(await self.directory.bind(binding))

    @unary
    async def DeleteBinding(self, request: Any, context: Ctx) -> Any:
        if not await self.directory.unbind(binding_of(request)):
            raise NotFound("no such binding", field="principal_id")
        return types_pb2.Empty()

    @unary
    async def ListBindings(self, request: Any, context: Ctx) -> Any:
        found = [b for b in await self.directory.all_bindings() if b.org_id == request.org_id]
        return iam_pb2.ListBindingsResponse(bindings=[binding_msg(b) for b in found])

    @unary
    async def CreateApiKey(self, request: Any, context: Ctx) -> Any:
        me = caller.principal_id()
        missing = functools.partial(NotFound, f"principal {request.principal_id} not found", field="principal_id")
        target = await self.directory.principal(request.principal_id) if request.principal_id else None
        if target is None:
            raise missing()
        if target.id != me:
            await caller.require("plasmavmc:iam:create_api_key", target.org_id, "", missing)
        expires = int(time.time()) + request.ttl_seconds if request.ttl_seconds else 0
        key, record = apikeys.new_key(target.id, expires, request.description)
        await self.directory.add_api_key(record)
        return iam_pb2.CreateApiKeyResponse(api_key=key, key_id=record.id, expires_at=expires)

    @unary
    async def IssueToken(self, request: Any, context: Ctx) -> Any:
        ttl = request.ttl_seconds or DEFAULT_TOKEN_SECONDS
        if ttl > MAX_TOKEN_SECONDS:
            raise InvalidArgument("ttl_seconds", f"at most {MAX_TOKEN_SECONDS}")
        token = await self.iam.tokens.issue(caller.principal_id(), ttl)
        return iam_pb2.IssueTokenResponse(token=token, expires_at=int(time.time()) + ttl)

    @unary
    async def WhoAmI(self, request: Any, context: Ctx) -> Any:
        me = caller.current().caller
        return iam_pb2.WhoAmIResponse(principal_id=me.principal_id, bindings=[binding_msg(b) for b in me.bindings])

    @unary
    async def RotateSigningKey(self, request: Any, context: Ctx) -> Any:
        return iam_pb2.RotateSigningKeyResponse(kid=(await self.iam.tokens.rotate()).kid)

    @unary
    async def CreateConsoleTicket(self, request: Any, context: Ctx) -> Any:
        scope = vm_scope(request.vm)
        vm = (await self.core.find_vm(VmRef(scope.org_id, scope.project_id, request.vm.vm_id))).value
        target = f"{vm.org_id}/{vm.project_id}/{vm.id}"
        ticket = await self.iam.tokens.issue(caller.principal_id(), TICKET_SECONDS, CONSOLE_SCOPE + target)
        path = CONSOLE_PATH.format(org=vm.org_id, project=vm.project_id, vm=vm.id)
        return iam_pb2.ConsoleTicket(ticket=ticket, expires_at=int(time.time()) + TICKET_SECONDS, path=path)

    @unary
    async def ListAuditEvents(self, request: Any, context: Ctx) -> Any:
        if request.limit > 1000:
            raise InvalidArgument("limit", "at most 1000")
        flt = AuditFilter(request.org_id, request.project_id, request.principal, request.since_ns,
                          request.until_ns, request.limit or 100)
        await self.iam.audit.flush()
        events = await self.iam.audit.list(flt)
        return iam_pb2.ListAuditEventsResponse(events=[
            iam_pb2.AuditEvent(time_ns=e.time_ns, principal=e.principal, action=e.action, org_id=e.org_id,
                               project_id=e.project_id, resource=e.resource, result=e.result, source=e.source)
            for e in events])
