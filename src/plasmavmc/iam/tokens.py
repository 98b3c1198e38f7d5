"""Signed tokens (JWT, HS256 only) with key ids and rotation.

The key ring lives in the state store: every replica signs with the newest key and verifies with any
key still stored, so `rotate()` adds a signing key without invalidating tokens already handed out, and
`retire(kid)` ends them. `decode` accepts exactly `ALGORITHMS`, requires `exp`, `iat`, `sub` and our
issuer, and looks the key up by the header's `kid`. A verified token is remembered briefly (keyed by
the token string) so the hot path does not verify the same token again and again.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from plasmavmc.iam.model import SigningKey
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.types import codec

ALGORITHMS = ["HS256"]
ISSUER = "plasmavmc"
RING_SECONDS = 5.0  # how long a replica trusts its copy of the key ring
VERIFIED_SECONDS = 5.0  # how long a verified token is remembered (never past its expiry)


@dataclass(frozen=True)
class Claims:
    subject: str
    expires_at: float
    scope: str = ""  # "" = a full credential; "console:<org>/<project>/<vm>" = a console ticket


def _secret(key: SigningKey) -> bytes:
    return base64.urlsafe_b64decode(key.secret)


class TokenKeys:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ring: dict[str, SigningKey] = {}
        self._ring_until = 0.0
        self._verified: dict[str, Claims] = {}
        self.generation = 0  # counts `retire` calls: what was verified before one must be verified again

    async def ring(self) -> dict[str, SigningKey]:
        if time.monotonic() >= self._ring_until:
            found = [codec.loads(SigningKey, kv.value) for kv in await self.store.list_all(keys.IAM + "signing_keys/")]
            self._ring = {key.kid: key for key in found}
            self._ring_until = time.monotonic() + RING_SECONDS
        return self._ring

    async def rotate(self) -> SigningKey:
        """Add a new signing key; the previous ones keep verifying until retired."""
        key = SigningKey(uuid.uuid4().hex[:16], base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                         time.time_ns())
        await self.store.commit([Write(keys.iam_signing_key(key.kid), codec.dumps(key), 0)])
        self._ring_until = 0.0
        return key

    async def retire(self, kid: str) -> bool:
        gone = await self.store.delete(keys.iam_signing_key(kid))
        self._ring_until, self._verified = 0.0, {}
        self.generation += 1
        return gone

    async def signing_key(self) -> SigningKey:
        ring = await self.ring()
        if not ring:
            return await self.rotate()
        return max(ring.values(), key=lambda k: k.created_at)

    async def issue(self, subject: str, ttl_seconds: float, scope: str = "", now: float | None = None) -> str:
        key = await self.signing_key()
        issued = time.time() if now is None else now
        claims: dict[str, Any] = {"sub": subject, "iss": ISSUER, "iat": int(issued),
                                  "exp": int(issued + ttl_seconds), "jti": uuid.uuid4().hex}
        if scope:
            claims["scope"] = scope
        return jwt.encode(claims, _secret(key), algorithm="HS256", headers={"kid": key.kid})

    async def verify(self, token: str) -> Claims | None:
        """The claims of a valid token signed by a key of the ring; None if it is not one."""
        hit = self._verified.get(token)
        if hit is not None and hit.expires_at > time.time():
            return hit
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = (await self.ring()).get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            data = jwt.decode(token, _secret(key), algorithms=ALGORITHMS, issuer=ISSUER,
                              options={"require": ["exp", "iat", "sub", "iss"]})
        except jwt.PyJWTError:
            return None
        claims = Claims(str(data["sub"]), float(data["exp"]), str(data.get("scope", "")))
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[token] = Claims(claims.subject, min(claims.expires_at, time.time() + VERIFIED_SECONDS),
                                       claims.scope)
        return claims
