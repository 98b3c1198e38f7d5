"""The roles and their actions, and the server-side identity records (API keys, signing keys, callers).

Action names follow spec §10.1: `plasmavmc:<resource>:<verb>`. A role is a set of actions; a binding
gives a principal a role at system scope (org "" and project ""), org scope (project "") or project
scope. `SYSTEM` is the org id of the platform itself (public images live there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plasmavmc.types.iam import Binding, Org, Principal, PrincipalKind, Project, Role

__all__ = ["ApiKey", "Binding", "Caller", "Org", "Principal", "PrincipalKind", "Project", "Role", "SigningKey"]

SYSTEM = "system"


def _actions(resource: str, *verbs: str) -> frozenset[str]:
    return frozenset(f"plasmavmc:{resource}:{verb}" for verb in verbs)


VIEW = (
    _actions("vms", "get", "list", "watch", "list_snapshots")
    | _actions("images", "get", "list", "download")
    | _actions("quotas", "get")
    | _actions("networks", "get", "list")
    | _actions("security_groups", "get", "list")
)
MEMBER = (
    VIEW
    | _actions("vms", "create", "update", "delete", "start", "stop", "reboot", "reset", "attach_disk",
               "detach_disk", "attach_nic", "detach_nic", "console", "snapshot", "restore",
               "delete_snapshot", "export")
    | _actions("images", "create", "upload", "convert")
    | _actions("networks", "create", "delete")
    | _actions("security_groups", "create", "update", "delete")
)
ORG_ADMIN = (
    MEMBER
    | _actions("images", "update", "delete")
    | _actions("iam", "get", "list", "create_project", "create_principal", "create_binding",
               "delete_binding", "create_api_key", "issue_token")
    | _actions("audit", "list")
)
ALL = "*"

ROLE_ACTIONS: dict[Role, frozenset[str]] = {
    Role.PROJECT_VIEWER: VIEW,
    Role.PROJECT_MEMBER: MEMBER,
    Role.ORG_ADMIN: ORG_ADMIN,
    Role.SYSTEM_ADMIN: frozenset({ALL}),
}

#: what a project-scoped role grants on org-level resources of its org (images are org-scoped)
ORG_LEVEL_FROM_PROJECT: frozenset[str] = (
    _actions("images", "get", "list", "download", "create", "upload", "convert") | _actions("quotas", "get")
)


@dataclass(frozen=True)
class ApiKey:
    id: str
    principal_id: str
    secret_hash: str  # argon2id
    created_at: int = 0
    expires_at: int = 0  # unix seconds; 0 = never
    description: str = ""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: str  # urlsafe base64, 32 random bytes (HS256)
    created_at: int = 0
    signing: bool = True  # the newest one signs; older ones only verify until retired


@dataclass(frozen=True)
class Caller:
    """An authenticated principal and its bindings, as one request sees it."""

    principal_id: str
    bindings: tuple[Binding, ...]
    via: str = "token"  # token | api_key | ticket
    ticket_vm: str = ""  # a console ticket is good for one VM only
    #: authorization decisions made for this caller, by (action, org, project): a caller is remembered
    #: no longer than its bindings may be trusted (`authn.py`), so neither are they
    decisions: dict[tuple[str, str, str], Any] = field(default_factory=dict, compare=False, repr=False)

    def is_system_admin(self) -> bool:
        return any(b.role is Role.SYSTEM_ADMIN and not b.org_id for b in self.bindings)
