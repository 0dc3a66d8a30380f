"""Who is calling, verified once per credential for a short while, not on every read.

A client sends the same `Authorization` header with each request. Verifying it (a SHA-256
and a constant-time compare for an API key, an HMAC and claim checks for a JWT) is a
measurable share of a read answered from cache, so the principal it yields is kept, per
exact header value, for `ttl_s` seconds at most, and never past the credential's expiry:
it is kept only if the credential also verifies at the end of that window (a key or token
valid then is valid all along, since expiry only comes once), so a credential that expires
within the window is verified on every request. Failures are never kept. Every kept
principal belongs to one generation of the key ring: when the keys file changes (a key
created or revoked), the ring's generation moves and nothing kept before counts any more, so
a revoked key is refused from its next request on.

The window is checked against the `now` each request is authenticated at (the app's
clock), not a cache timer, so the cache itself is a plain LRU.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from cachetools import LRUCache

from chancery.auth import AuthenticationError, Authenticator, Principal

DEFAULT_TTL_S = 30.0
DEFAULT_SIZE = 1024


class _Kept(NamedTuple):
    principal: Principal
    since: datetime
    until: datetime
    generation: int


class VerifiedPrincipals:
    def __init__(
        self,
        authenticator: Authenticator,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        size: int = DEFAULT_SIZE,
    ) -> None:
        self.authenticator = authenticator
        self._ttl = timedelta(seconds=ttl_s)
        self._kept: LRUCache[str, _Kept] = LRUCache(size)

    def authenticate(self, authorization: str | None, *, now: datetime) -> Principal:
        """`Authenticator.authenticate`, from what was verified recently when still valid."""
        if authorization is None or not self.authenticator.enabled:
            return self.authenticator.authenticate(authorization, now=now)
        generation = self.authenticator.keys.refresh()
        kept = self._kept.get(authorization)
        if kept is not None:
            if kept.since <= now < kept.until and kept.generation == generation:
                return kept.principal
            del self._kept[authorization]
        principal = self.authenticator.authenticate(authorization, now=now)
        until = now + self._ttl
        try:
            self.authenticator.authenticate(authorization, now=until)
        except AuthenticationError:
            return principal  # expires within the window: not kept
        self._kept[authorization] = _Kept(principal, now, until, generation)
        return principal
