"""The one place a request is let in: authenticate a credential, then authorize an action on a scope.

A scope the caller may not see raises the resource's own not-found error (built by the caller of
`require`, so it reads exactly like a truly missing resource); a visible scope without the action raises
PERMISSION_DENIED. `Iam` bundles the parts the server wires together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from plasmavmc.errors import PermissionDenied, PlasmaError
from plasmavmc.iam.audit import AuditLog
from plasmavmc.iam.authn import Authenticator
from plasmavmc.iam.authz import Authorizer, Decision
from plasmavmc.iam.directory import Directory
from plasmavmc.iam.model import Caller
from plasmavmc.iam.tokens import TokenKeys


@dataclass
class Gate:
    authn: Authenticator
    authorizer: Authorizer

    async def caller(self, credential: str | None) -> Caller:
        return await self.authn.caller(credential)

    def remembered(self, credential: str | None) -> Caller | None:
        """`caller` when the answer is remembered (the per-call path, no coroutine), else None."""
        return self.authn.remembered(credential)

    async def decide(self, caller: Caller, action: str, org_id: str, project_id: str) -> Decision:
        return await self.authorizer.decide(caller, action, org_id, project_id)

    async def require(self, caller: Caller, action: str, org_id: str, project_id: str,
                      missing: Callable[[], PlasmaError]) -> None:
        if not self.settled(caller, action, org_id, project_id, missing):
            _enforce(await self.decide(caller, action, org_id, project_id), caller, action, org_id, project_id,
                     missing)

    def settled(self, caller: Caller, action: str, org_id: str, project_id: str,
                missing: Callable[[], PlasmaError]) -> bool:
        """`require` when a decision is kept on the caller (the per-call path, no coroutine): True when it
        allows, raises when it refuses; False when no decision is kept (await `require`)."""
        decision = caller.decisions.get((action, org_id, project_id))
        if decision is None:
            return False
        _enforce(decision, caller, action, org_id, project_id, missing)
        return True


def _enforce(decision: Decision, caller: Caller, action: str, org_id: str, project_id: str,
             missing: Callable[[], PlasmaError]) -> None:
    if decision is Decision.HIDDEN:
        raise missing()
    if decision is Decision.DENY:
        where = "/".join(p for p in (org_id, project_id) if p) or "the platform"
        raise PermissionDenied(f"{caller.principal_id} may not {action} in {where}")


@dataclass
class Iam:
    directory: Directory
    tokens: TokenKeys
    gate: Gate
    audit: AuditLog
