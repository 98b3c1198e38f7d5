"""Authentication: a credential (bearer token, console ticket or API key) → a `Caller`, or UNAUTHENTICATED.

A principal's bindings are read from the store and remembered for `BINDINGS_SECONDS`, so a revoked
binding stops counting within that time on every replica while the hot path makes no store read.

Every call authenticates, so the `Caller` a credential stands for is remembered too (`CALLERS` of them,
least recently used evicted, keyed by the credential's SHA-256, never the credential itself), for no
longer than each of its parts may be trusted: the bindings it holds (`BINDINGS_SECONDS`), the API key's
verification (`apikeys.CACHE_SECONDS`: a revoked or expired key stops working within that time), the
token's verification (`tokens.VERIFIED_SECONDS`, never past its `exp`). Retiring a signing key forgets
every remembered caller at once, as it forgets every verified token. A remembered caller carries the
authorization decisions made for it (`Caller.decisions`), which therefore last no longer than its bindings.
When a remembered caller expires under load, the calls in flight with that credential wait for ONE
authentication (`_pending`, per credential digest) instead of each reading the store again (issue 19:
every `BINDINGS_SECONDS`, 64 calls in flight made 64 reads of the same bindings at once).
"""

from __future__ import annotations

import hashlib
import time

from plasmavmc.errors import Unauthenticated
from plasmavmc.iam.apikeys import ApiKeyVerifier, looks_like_api_key
from plasmavmc.iam.cache import ExpiringLru, InFlight
from plasmavmc.iam.directory import Directory
from plasmavmc.iam.model import Binding, Caller
from plasmavmc.iam.tokens import VERIFIED_SECONDS, TokenKeys

BINDINGS_SECONDS = 2.0
CALLERS = 10_000
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
        self._callers: ExpiringLru[bytes, Caller] = ExpiringLru(CALLERS)
        self._generation = tokens.generation
        self._pending: InFlight[bytes, Caller] = InFlight()  # authentications running, by digest

    async def bindings(self, principal_id: str) -> tuple[Binding, ...]:
        return (await self._bindings_until(principal_id))[0]

    async def _bindings_until(self, principal_id: str) -> tuple[tuple[Binding, ...], float]:
        """The principal's bindings, and the monotonic time until which they may be trusted."""
        now = time.monotonic()
        hit = self._bindings.get(principal_id)
        if hit is not None and hit[1] > now:
            return hit
        found = tuple(await self.directory.bindings_of(principal_id))
        if len(self._bindings) > 10_000:
            self._bindings.clear()
        self._bindings[principal_id] = kept = (found, now + BINDINGS_SECONDS)
        return kept

    def remembered(self, credential: str | None) -> Caller | None:
        """The caller `credential` stands for if it is remembered (and still may be trusted), else None:
        the per-call path, without a coroutine."""
        if not credential:
            return None
        if self._generation != self.tokens.generation:  # a signing key was retired
            self._callers.clear()
            self._generation = self.tokens.generation
        return self._callers.get(hashlib.sha256(credential.encode()).digest(), time.monotonic())

    async def caller(self, credential: str | None) -> Caller:
        """The caller a credential stands for; UNAUTHENTICATED if it is missing, expired or tampered."""
        if not credential:
            raise Unauthenticated("a credential is required: authorization: Bearer <token or API key>")
        hit = self.remembered(credential)
        if hit is not None:
            return hit
        digest = hashlib.sha256(credential.encode()).digest()
        return await self._pending.run(digest, lambda: self._remember(credential, digest))

    async def _remember(self, credential: str, digest: bytes) -> Caller:
        generation = self._generation
        found, until = await self._authenticate(credential)
        if generation == self.tokens.generation:
            self._callers.put(digest, found, until)
        return found

    async def _authenticate(self, credential: str) -> tuple[Caller, float]:
        """The caller, and the monotonic time until which every part of it may be trusted."""
        if looks_like_api_key(credential):
            verified = await self.api_keys.verified(credential)
            if verified is None:
                raise Unauthenticated("the API key is not valid (unknown, revoked or expired)")
            principal, key_until = verified
            bindings, until = await self._bindings_until(principal)
            return Caller(principal, bindings, via="api_key"), min(key_until, until)
        claims = await self.tokens.verify(credential)
        if claims is None:
            raise Unauthenticated("the token is not valid (malformed, expired, or not signed by this platform)")
        ticket_vm = claims.scope[len(CONSOLE_SCOPE):] if claims.scope.startswith(CONSOLE_SCOPE) else ""
        via = "ticket" if ticket_vm else "token"
        bindings, until = await self._bindings_until(claims.subject)
        token_seconds = min(VERIFIED_SECONDS, claims.expires_at - time.time())
        caller = Caller(claims.subject, bindings, via=via, ticket_vm=ticket_vm)
        return caller, min(until, time.monotonic() + token_seconds)
