"""Who is calling, verified once per credential for a short while, not on every read.

A client sends the same `Authorization` header with each request. Verifying it (a SHA-256
and a constant-time compare for an API key, an HMAC and claim checks for a JWT) is a
measurable share of a read answered from cache, so the principal it yields is kept, per
exact header value, for `ttl_s` seconds at most, and never past the credential's expiry:
it is kept only if the credential also verifies at the end of that window (a key or token
valid then is valid all along, since expiry only comes once), so a credential that expires
within the window is verified on every request, as before. Failures are never kept. The
key ring is loaded once at start, so there is no revocation for a kept principal to miss.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chancery.auth import AuthenticationError, Authenticator, Principal

DEFAULT_TTL_S = 30.0
DEFAULT_SIZE = 1024


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
        self._size = size
        self._kept: dict[str, tuple[Principal, datetime, datetime]] = {}  # oldest first

    def authenticate(self, authorization: str | None, *, now: datetime) -> Principal:
        """`Authenticator.authenticate`, from what was verified recently when still valid."""
        if authorization is None or not self.authenticator.enabled:
            return self.authenticator.authenticate(authorization, now=now)
        kept = self._kept.get(authorization)
        if kept is not None:
            principal, since, until = kept
            if since <= now < until:
                return principal
            del self._kept[authorization]
        principal = self.authenticator.authenticate(authorization, now=now)
        until = now + self._ttl
        try:
            self.authenticator.authenticate(authorization, now=until)
        except AuthenticationError:
            return principal  # expires within the window: not kept
        if len(self._kept) >= self._size:
            del self._kept[next(iter(self._kept))]
        self._kept[authorization] = (principal, now, until)
        return principal
