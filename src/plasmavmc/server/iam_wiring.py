"""Builds the identity side of the control plane from `[iam]`: directory, token keys, authenticator,
the authorizer (built-in RBAC, or the external IAM at `endpoint`), the audit log, and the bootstrap
system-admin credential."""

from __future__ import annotations

from pathlib import Path

from plasmavmc.config.server import IamSettings
from plasmavmc.iam.audit import AuditLog
from plasmavmc.iam.authn import Authenticator
from plasmavmc.iam.authz import Authorizer, HttpAuthorizer, RbacAuthorizer
from plasmavmc.iam.bootstrap import bootstrap
from plasmavmc.iam.directory import Directory
from plasmavmc.iam.gate import Gate, Iam
from plasmavmc.iam.tokens import TokenKeys
from plasmavmc.store.base import Store


def authorizer_for(settings: IamSettings) -> Authorizer:
    if settings.endpoint is None:
        return RbacAuthorizer()
    token = Path(settings.token_path).read_text().strip() if settings.token_path else None
    return HttpAuthorizer(settings.endpoint, token)


async def build_iam(store: Store, settings: IamSettings) -> Iam:
    directory = Directory(store)
    tokens = TokenKeys(store)
    await tokens.signing_key()  # the first replica makes the key ring
    await bootstrap(directory, Path(settings.bootstrap_credential_path))
    gate = Gate(Authenticator(directory, tokens), authorizer_for(settings))
    audit = AuditLog(store, settings.audit_retention_days * 86400, settings.audit_max_entries)
    return Iam(directory, tokens, gate, audit)
