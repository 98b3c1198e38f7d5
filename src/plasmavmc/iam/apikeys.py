"""API keys: `pvk_<key id>_<secret>`, stored as an argon2id hash of the secret under the key id.

Verifying argon2 costs tens of milliseconds by design, so a verified key is remembered (by its SHA-256,
never the key itself) for `CACHE_SECONDS`; a revoked or expired key stops working within that time.
The verification runs off the event loop, once per key however many calls carrying it arrive while
it runs (they all wait for that one), so a cache expiry under load neither stalls every other call
nor costs one argon2 run per call in flight. When a remembered key's time is up, its record is read
again (revoked: gone; expired: `expires_at`); if the record still holds the very hash this key's
secret was verified against, the key is remembered again without a second argon2 run (the same secret
against the same hash gives the same answer): in the steady state of a busy key, calls wait for one
store read every `CACHE_SECONDS` instead of for argon2 (0.1 to 0.5 s here, every call in flight held).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from plasmavmc.iam.cache import InFlight
from plasmavmc.iam.directory import Directory
from plasmavmc.iam.model import ApiKey

PREFIX = "pvk_"
CACHE_SECONDS = 30.0
_HASHER = PasswordHasher()


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


def split(credential: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    body = credential[len(PREFIX):]
    key_id, sep, secret = body.partition("_")
    if not sep or len(key_id) != 16 or not secret or len(secret) > 128:
        return None
    return key_id, secret


def new_key(principal_id: str, expires_at: int = 0, description: str = "") -> tuple[str, ApiKey]:
    """(the key to hand out once, the record to store)."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return f"{PREFIX}{key_id}_{secret}", record_for(principal_id, key_id, secret, expires_at, description)


def record_for(principal_id: str, key_id: str, secret: str, expires_at: int = 0, description: str = "") -> ApiKey:
    return ApiKey(key_id, principal_id, _HASHER.hash(secret), int(time.time()), expires_at, description[:128])


class ApiKeyVerifier:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._cache: dict[bytes, tuple[str, float]] = {}
        self._hashes: dict[bytes, str] = {}  # by digest: the stored hash the key's secret was verified against
        self._verifying: InFlight[bytes, tuple[str, float] | None] = InFlight()  # by digest: the check running

    async def principal_of(self, credential: str) -> str | None:
        """The principal a valid, unexpired key belongs to; None for anything else."""
        found = await self.verified(credential)
        return None if found is None else found[0]

    async def verified(self, credential: str) -> tuple[str, float] | None:
        """(principal, until when this answer may be trusted: a `time.monotonic()` time) of a valid key."""
        digest = hashlib.sha256(credential.encode()).digest()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit
        return await self._verifying.run(digest, lambda: self._verify(credential, digest))

    async def _verify(self, credential: str, digest: bytes) -> tuple[str, float] | None:
        parts = split(credential)
        if parts is None:
            return None
        record = await self.directory.api_key(parts[0])
        if record is None or (record.expires_at and record.expires_at <= time.time()):
            return None
        if self._hashes.get(digest) != record.secret_hash:
            try:
                await asyncio.to_thread(_HASHER.verify, record.secret_hash, parts[1])
            except (VerificationError, InvalidHashError):
                return None
        if len(self._cache) > 10_000:
            self._cache.clear()
            self._hashes.clear()
        self._hashes[digest] = record.secret_hash
        self._cache[digest] = found = (record.principal_id, time.monotonic() + CACHE_SECONDS)
        return found
