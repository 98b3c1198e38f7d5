"""Authentication: a credential (bearer token, console ticket or API key) → a `Caller`, or UNAUTHENTICATED.

A principal's bindings are read from the store and remembered for `BINDINGS_SECONDS`, so a revoked
binding stops counting within that time on every replica while the hot path makes no store read.
"""

from __future__ import annotations

import time

from plasmavmc.errors import Unauthenticated
from plasmavmc.iam.apikeys import ApiKeyVerifier, looks_like_api_key
from plasmavmc.iam.directory import Directory
from plasmavmc.iam.model import Binding, Caller
from plasmavmc.iam.tokens import TokenKeys

BINDINGS_SECONDS = 2.0
CONSOLE_SCOPE = "console:"


def bearer(value: str | None) -> str | None:
    """The credential of an `authorization` header value (`Bearer X`), or None."""
    if not value:
        return None
    kind, _, credential = value.strip().partition(" ")
    return credential.strip() if kind.lower() == "bearer" and credential.strip() else None


class Authenticator:
    def __init__(self, directory: Directory, tokens: TokenKeys) -> None:
        self.directory = directory
        self.tokens = tokens
        self.api_keys = ApiKeyVerifier(directory)
        self._bindings: dict[str, tuple[tuple[Binding, ...], float]] = {}

    async def bindings(self, principal_id: str) -> tuple[Binding, ...]:
        now = time.monotonic()
        hit = self._bindings.get(principal_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        found = tuple(await self.directory.bindings_of(principal_id))
        if len(self._bindings) > 10_000:
            self._bindings.clear()
        self._bindings[principal_id] = (found, now + BINDINGS_SECONDS)
        return found

    async def caller(self, credential: str | None) -> Caller:
        """The caller a credential stands for; UNAUTHENTICATED if it is missing, expired or tampered."""
        if not credential:
            raise Unauthenticated("a credential is required: authorization: Bearer <token or API key>")
        if looks_like_api_key(credential):
            principal = await self.api_keys.principal_of(credential)
            if principal is None:
                raise Unauthenticated("the API key is not valid (unknown, revoked or expired)")
            return Caller(principal, await self.bindings(principal), via="api_key")
        claims = await self.tokens.verify(credential)
        if claims is None:
            raise Unauthenticated("the token is not valid (malformed, expired, or not signed by this platform)")
        ticket_vm = claims.scope[len(CONSOLE_SCOPE):] if claims.scope.startswith(CONSOLE_SCOPE) else ""
        via = "ticket" if ticket_vm else "token"
        return Caller(claims.subject, await self.bindings(claims.subject), via=via, ticket_vm=ticket_vm)
