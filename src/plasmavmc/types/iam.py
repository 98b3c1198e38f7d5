"""Identity and audit records as callers see them (the API, the client, the CLI): tenants, principals,
role bindings, audit entries. What only the server needs (role → action table, credential records,
the authorizer) lives in `plasmavmc.iam`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    SYSTEM_ADMIN = "system-admin"
    ORG_ADMIN = "org-admin"
    PROJECT_MEMBER = "project-member"
    PROJECT_VIEWER = "project-viewer"


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE_ACCOUNT = "service_account"


@dataclass(frozen=True)
class Org:
    id: str
    display_name: str = ""
    created_at: int = 0


@dataclass(frozen=True)
class Project:
    org_id: str
    id: str
    display_name: str = ""
    created_at: int = 0


@dataclass(frozen=True)
class Principal:
    id: str
    kind: PrincipalKind = PrincipalKind.USER
    org_id: str = ""  # home org; "" for platform operators
    display_name: str = ""
    created_at: int = 0


@dataclass(frozen=True)
class Binding:
    principal_id: str
    role: Role
    org_id: str = ""  # "" = system scope
    project_id: str = ""  # "" = the whole org (or system)

    def covers(self, org_id: str, project_id: str) -> bool:
        """Whether this binding's scope contains (org_id, project_id); project "" means the org itself."""
        if not self.org_id:
            return True
        if self.org_id != org_id:
            return False
        return not self.project_id or self.project_id == project_id

    def touches(self, org_id: str) -> bool:
        """Whether the binding lies anywhere inside `org_id` (or above it)."""
        return not self.org_id or self.org_id == org_id


@dataclass(frozen=True)
class AuditEntry:
    time_ns: int
    principal: str  # "" when no credential was presented or it was not valid
    action: str
    org_id: str
    project_id: str
    resource: str
    result: str  # "OK" or the spec error code
    source: str  # the peer address


@dataclass(frozen=True)
class AuditFilter:
    org_id: str = ""
    project_id: str = ""
    principal: str = ""
    since_ns: int = 0
    until_ns: int = 0
    limit: int = 100

    def matches(self, entry: AuditEntry) -> bool:
        return (
            (not self.org_id or entry.org_id == self.org_id)
            and (not self.project_id or entry.project_id == self.project_id)
            and (not self.principal or entry.principal == self.principal)
            and (not self.until_ns or entry.time_ns < self.until_ns)
        )
