"""Browser sessions for the Atlas: a cookie that vouches for an API key, without holding it.

A person signs in once with an API key (the login page, or the link `make run` prints, as
Jupyter does with its token); the API answers with a cookie and the key is not kept by the
browser. The cookie is `v1.<key id>.<expiry>.<mac>`: the MAC is an HMAC-SHA256 of the first
three parts, keyed by the stored digest of that key (and `CHANCERY_SESSION_SECRET` when set).
So:
- any API process with the same keys file accepts it, with no shared session store;
- revoking the key (`chancery keys revoke`) ends every session it opened within about a
  second, as it ends the key itself (the ring follows the keys file), and a key's own expiry
  bounds its sessions;
- without the secret, a copy of the keys file would let one forge a session (it could not
  give the key itself): set `CHANCERY_SESSION_SECRET` where the keys file is not private.

What a session may do: read (`events:read`, when its key has it), and only on safe requests
(GET, HEAD) that a page of the same origin makes. `SessionCookies` turns the cookie into an
`Authorization: Session ...` header on those requests only, so the routes' authentication
sees it like any credential; the API answers nothing but reads, and ingest, on another
origin, never sees the cookie (it takes no cookie at all). The cookie is HttpOnly (no script
reads it) and SameSite=Strict.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.types import ASGIApp, Receive, Scope, Send

from chancery.auth import AuthenticationError, Authenticator, KeyRing, Principal
from chancery.auth import Scope as AuthScope
from chancery.settings import ApiSettings

COOKIE = "chancery_session"
SCHEME = "Session"
VERSION = "v1"
MAX_COOKIE = 256
SAFE_METHODS = frozenset({"GET", "HEAD"})
SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})
"""`Sec-Fetch-Site` values of a request the page itself (or the address bar) made."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Session:
    cookie: str
    expires: datetime
    subject: str


@dataclass(frozen=True)
class SessionSigner:
    """Issues and checks session cookies against the key ring."""

    keys: KeyRing
    ttl: timedelta
    secret: bytes = b""

    def _mac(self, payload: str, stored_digest: str) -> str:
        key = hashlib.sha256(
            b"chancery-session\0" + self.secret + b"\0" + stored_digest.encode()
        ).digest()
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())

    def open(self, api_key: str, *, now: datetime) -> Session:
        """A session for a valid API key that may read; AuthenticationError or
        PermissionDeniedError otherwise."""
        principal = self.keys.verify(api_key, now=now)
        principal.require(AuthScope.EVENTS_READ)
        key_id = api_key.split("_")[1]  # verify checked the shape chk_<id>_<secret>
        stored = self.keys.find(key_id)
        if stored is None:  # pragma: no cover - verify found it a moment ago
            raise AuthenticationError("the API key is not valid")
        expires = now + self.ttl
        if stored.expires is not None:
            expires = min(expires, stored.expires)
        payload = f"{VERSION}.{key_id}.{int(expires.timestamp())}"
        cookie = f"{payload}.{self._mac(payload, stored.sha256)}"
        return Session(cookie, datetime.fromtimestamp(int(expires.timestamp()), UTC), stored.name)

    def verify(self, cookie: str, *, now: datetime) -> Principal:
        parts = cookie.split(".")
        if len(cookie) > MAX_COOKIE or len(parts) != 4 or parts[0] != VERSION:
            raise AuthenticationError("the session is not valid: sign in again")
        _, key_id, expiry, mac = parts
        stored = self.keys.find(key_id)
        expected = self._mac(f"{VERSION}.{key_id}.{expiry}", stored.sha256 if stored else "0")
        if stored is None or not hmac.compare_digest(mac, expected):
            raise AuthenticationError("the session is not valid: sign in again")
        if not expiry.isdigit() or int(expiry) <= now.timestamp():
            raise AuthenticationError("the session has expired: sign in again")
        if stored.expires is not None and stored.expires <= now:
            raise AuthenticationError("the API key of this session has expired")
        scopes = frozenset(s.value for s in stored.scopes) & {AuthScope.EVENTS_READ.value}
        return Principal(subject=stored.name, scopes=scopes, kind="session")


@dataclass(frozen=True)
class SessionAuthenticator(Authenticator):
    """An Authenticator that also takes `Authorization: Session <cookie>` (what
    SessionCookies makes of the cookie)."""

    sessions: SessionSigner | None = None

    def authenticate(self, authorization: str | None, *, now: datetime) -> Principal:
        if self.enabled and self.sessions is not None and authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme == SCHEME:
                return self.sessions.verify(value.strip(), now=now)
        return super().authenticate(authorization, now=now)


def with_sessions(authenticator: Authenticator, settings: ApiSettings) -> SessionAuthenticator:
    """`authenticator`, accepting session cookies signed for its keys."""
    secret = settings.session_secret.get_secret_value() if settings.session_secret else ""
    signer = SessionSigner(
        authenticator.keys, timedelta(seconds=settings.session_ttl_s), secret.encode()
    )
    return SessionAuthenticator(
        keys=authenticator.keys,
        jwt=authenticator.jwt,
        enabled=authenticator.enabled,
        sessions=signer,
    )


def signer_of(authenticator: Authenticator) -> SessionSigner | None:
    return authenticator.sessions if isinstance(authenticator, SessionAuthenticator) else None


def cookie_header(session: Session, *, now: datetime, secure: bool) -> str:
    max_age = max(0, int((session.expires - now).total_seconds()))
    return f"{COOKIE}={session.cookie}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict" + (
        "; Secure" if secure else ""
    )


def clearing_header(*, secure: bool) -> str:
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" + (
        "; Secure" if secure else ""
    )


def cookie_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The session cookie among a request's headers, if any."""
    wanted = COOKIE.encode() + b"="
    for name, value in headers:
        if name == b"cookie":
            for raw in value.split(b";"):
                part = raw.strip()
                if part.startswith(wanted):
                    text = part[len(wanted) :].decode("latin-1")
                    return text if 0 < len(text) <= MAX_COOKIE and text.isprintable() else None
    return None


def from_the_page(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request comes from a page of this origin or the address bar (browsers
    say so in Sec-Fetch-Site; other clients send no cookie anyway)."""
    for name, value in headers:
        if name == b"sec-fetch-site":
            return value.decode("latin-1").strip().lower() in SAME_ORIGIN_FETCHES
    return True


class SessionCookies:
    """Pure ASGI: on a safe request from the page without an Authorization header, present
    its session cookie as `Authorization: Session <cookie>`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in SAFE_METHODS:
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            if not any(name == b"authorization" for name, _ in headers):
                cookie = cookie_of(headers)
                if cookie is not None and from_the_page(headers):
                    value = f"{SCHEME} {cookie}".encode("latin-1")
                    scope = {**scope, "headers": [*headers, (b"authorization", value)]}
        await self.app(scope, receive, send)
