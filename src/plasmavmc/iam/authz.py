"""The authorizer interface and its two implementations: built-in RBAC and an external IAM over HTTP.

`decide(caller, action, org, project)` answers ALLOW, DENY (the caller may see the scope but lacks the
action: PERMISSION_DENIED) or HIDDEN (the caller may not even see the scope: the API answers as if the
resource did not exist). Scope: org "" is the platform itself (nodes), project "" an org-level resource
(images, org quotas, org-wide lists).
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Protocol

import aiohttp

from plasmavmc.errors import Unavailable
from plasmavmc.iam.model import ALL, ORG_LEVEL_FROM_PROJECT, ROLE_ACTIONS, Binding, Caller


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    HIDDEN = "hidden"


class Authorizer(Protocol):
    async def decide(self, caller: Caller, action: str, org_id: str, project_id: str) -> Decision: ...


def _grants(binding: Binding, action: str) -> bool:
    actions = ROLE_ACTIONS[binding.role]
    return ALL in actions or action in actions


def rbac_decide(caller: Caller, action: str, org_id: str, project_id: str) -> Decision:
    """Role bindings decide: a binding whose scope holds (org, project) grants its role's actions; a
    project binding also grants the org-level actions of `ORG_LEVEL_FROM_PROJECT` in its org."""
    visible = False
    for binding in caller.bindings:
        if not org_id:  # the platform: every authenticated caller sees it; system bindings act on it
            visible = True
            if not binding.org_id and _grants(binding, action):
                return Decision.ALLOW
        elif binding.covers(org_id, project_id):
            visible = True
            if _grants(binding, action):
                return Decision.ALLOW
        elif not project_id and binding.touches(org_id):
            visible = True
            if action in ORG_LEVEL_FROM_PROJECT and _grants(binding, action):
                return Decision.ALLOW
    if not org_id:
        visible = True
    return Decision.DENY if visible else Decision.HIDDEN


MEMO_DECISIONS = 256  # per caller; more distinct (action, scope) pairs in its lifetime start the memo over


class RbacAuthorizer:
    """The built-in authorizer: the caller's role bindings from this platform's own store. A decision
    depends on those bindings only, so it is kept on the caller (`Caller.decisions`), which lives no
    longer than its bindings are trusted."""

    async def decide(self, caller: Caller, action: str, org_id: str, project_id: str) -> Decision:
        key = (action, org_id, project_id)
        memo = caller.decisions
        decision: Decision | None = memo.get(key)
        if decision is None:
            if len(memo) >= MEMO_DECISIONS:
                memo.clear()
            decision = memo[key] = rbac_decide(caller, action, org_id, project_id)
        return decision


class HttpAuthorizer:
    """An external IAM (`[iam] endpoint`, the spec's aegis) asked over HTTP:

    ``POST {endpoint}/v1/authorize`` with ``{"principal", "action", "org_id", "project_id"}``, answered
    ``{"decision": "allow" | "deny" | "hidden"}``. Answers are remembered for `CACHE_SECONDS`; an IAM
    that cannot be reached refuses (UNAVAILABLE), never allows.
    """

    CACHE_SECONDS = 2.0

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = 2.0) -> None:
        self.url = endpoint.rstrip("/") + "/v1/authorize"
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._cache: dict[tuple[str, str, str, str], tuple[Decision, float]] = {}

    async def decide(self, caller: Caller, action: str, org_id: str, project_id: str) -> Decision:
        key = (caller.principal_id, action, org_id, project_id)
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        body = {"principal": caller.principal_id, "action": action, "org_id": org_id, "project_id": project_id}
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session, \
                    session.post(self.url, json=body, headers=self.headers) as resp:
                resp.raise_for_status()
                decision = Decision(str((await resp.json()).get("decision", "deny")))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"external IAM at {self.url} cannot decide: {type(exc).__name__}") from exc
        self._cache[key] = (decision, time.monotonic() + self.CACHE_SECONDS)
        return decision
