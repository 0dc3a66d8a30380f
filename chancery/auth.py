"""Who is calling, and what they may do: API keys and signed JWTs carrying scopes.

API keys look like `chk_<key id>_<secret>`. Only a SHA-256 digest of each key is stored
(keys are 256-bit random, so a fast hash is the right tool: there is nothing to brute
force). A presented key is looked up by its id and compared to the stored digest with
`hmac.compare_digest`; an unknown id is compared against a dummy digest so that timing
does not tell which ids exist.

JWTs are HS256, with `exp` required and `iss`/`aud` checked; scopes come from the
space-separated `scope` claim (RFC 8693) or a `scopes` list.

Pure code: no HTTP here. The services map `AuthenticationError` to 401 and
`PermissionDeniedError` to 403.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

KEY_PREFIX = "chk"
_KEY_SHAPE = re.compile(r"^chk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY_DIGEST = hashlib.sha256(b"chancery-no-such-key").hexdigest()


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    EVENTS_READ = "events:read"
    SUBSCRIPTIONS_WRITE = "subscriptions:write"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)


class AuthenticationError(Exception):
    """The caller could not be identified (missing, malformed, unknown or expired credential)."""


class PermissionDeniedError(Exception):
    """The caller is known but lacks a scope."""


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    kind: str  # "api-key" | "jwt" | "anonymous"

    def require(self, scope: Scope) -> None:
        if scope.value not in self.scopes:
            raise PermissionDeniedError(
                f"{self.kind} {self.subject!r} lacks the scope {scope.value!r} "
                f"(it has: {', '.join(sorted(self.scopes)) or 'none'})"
            )


ANONYMOUS_ADMIN = Principal(subject="auth-disabled", scopes=frozenset(ALL_SCOPES), kind="anonymous")


class StoredKey(BaseModel):
    """One API key as stored: never the key itself, only its digest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(pattern=r"^[0-9a-f]{12}$")
    name: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[Scope]
    created: datetime
    expires: datetime | None = None


_STORED_KEYS = TypeAdapter(list[StoredKey])


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(
    name: str, scopes: Iterable[Scope], *, now: datetime, expires: datetime | None = None
) -> tuple[str, StoredKey]:
    """A fresh key (shown once) and the record to store."""
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = StoredKey(
        key_id=key_id,
        name=name,
        sha256=digest(key),
        scopes=frozenset(scopes),
        created=now,
        expires=expires,
    )
    return key, record


def key_id_of(text: str) -> str | None:
    """The key id a key (`chk_<id>_<secret>`) carries, or `text` itself when it is an id."""
    text = text.strip()
    if match := _KEY_SHAPE.match(text):
        return match.group(1)
    return text if re.fullmatch(r"[0-9a-f]{12}", text) else None


def read_keys(path: Path) -> list[StoredKey]:
    """The keys stored in `path` (none when it does not exist)."""
    if not path.exists():
        return []
    return _STORED_KEYS.validate_json(path.read_bytes())


class KeyRing:
    """The stored API keys, looked up by id.

    `generation` counts the changes of a ring that follows its file (see
    services/platform/keyfile.py); what is derived from a ring (a cache of verified
    principals) is valid for one generation. A ring built in memory never changes.
    """

    def __init__(self, keys: Iterable[StoredKey] = ()) -> None:
        self._by_id: dict[str, StoredKey] = {k.key_id: k for k in keys}

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls(read_keys(path))

    def save(self, path: Path) -> None:
        """Write the ring to `path` at once: a service re-reading the file meanwhile sees
        the old ring or the new one, never half of it (a new file, renamed over the old)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        temporary = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_STORED_KEYS.dump_json(list(self._by_id.values()), indent=2))
            temporary.chmod(0o600)  # mkstemp made it 0600 already; say so anyway
            temporary.replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def add(self, key: StoredKey) -> None:
        self._by_id[key.key_id] = key

    def remove(self, key_id: str) -> StoredKey | None:
        """Take a key out of the ring (revoke it); the key removed, if there was one."""
        return self._by_id.pop(key_id, None)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[StoredKey]:
        return iter(list(self._by_id.values()))

    @property
    def generation(self) -> int:
        return 0

    def refresh(self) -> int:
        """Take in changes to what the ring follows, if it follows anything; the generation."""
        return self.generation

    def find(self, key_id: str) -> StoredKey | None:
        """The stored key with this id, if any (a session cookie names its key by id)."""
        self.refresh()
        return self._by_id.get(key_id)

    def verify(self, presented: str, *, now: datetime) -> Principal:
        self.refresh()
        match = _KEY_SHAPE.match(presented)
        stored = self._by_id.get(match.group(1)) if match else None
        expected = stored.sha256 if stored else _DUMMY_DIGEST
        if not hmac.compare_digest(digest(presented), expected) or stored is None:
            raise AuthenticationError("the API key is not valid")
        if stored.expires is not None and stored.expires <= now:
            raise AuthenticationError("the API key has expired")
        return Principal(
            subject=stored.name, scopes=frozenset(s.value for s in stored.scopes), kind="api-key"
        )


@dataclass(frozen=True)
class JwtVerifier:
    secret: str
    issuer: str
    audience: str
    leeway_s: int = 30

    def issue(self, subject: str, scopes: Iterable[Scope], *, now: datetime, ttl: timedelta) -> str:
        claims: dict[str, Any] = {
            "sub": subject,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "scope": " ".join(sorted(s.value for s in scopes)),
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str, *, now: datetime) -> Principal:
        try:
            claims: Mapping[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                # Expiry is checked below against the injected clock, not PyJWT's own,
                # so that one clock decides for keys and tokens alike.
                options={"require": ["exp", "sub"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"the token is not valid: {exc}") from exc
        try:
            exp = int(claims["exp"])
        except (TypeError, ValueError, OverflowError):
            raise AuthenticationError("the token is not valid: exp must be an integer") from None
        if exp + self.leeway_s <= now.timestamp():
            raise AuthenticationError("the token has expired")
        raw = claims.get("scope", claims.get("scopes", ""))
        scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
        return Principal(subject=str(claims["sub"]), scopes=frozenset(scopes), kind="jwt")


@dataclass(frozen=True)
class Authenticator:
    """Turns an `Authorization` header value into a Principal."""

    keys: KeyRing
    jwt: JwtVerifier | None
    enabled: bool = True

    def authenticate(self, authorization: str | None, *, now: datetime) -> Principal:
        if not self.enabled:
            return ANONYMOUS_ADMIN
        if not authorization:
            raise AuthenticationError(
                "missing credentials: send 'Authorization: Bearer <API key or JWT>'"
            )
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationError("the Authorization header must be 'Bearer <credential>'")
        return self.verify_credential(credential, now=now)

    def verify_credential(self, credential: str, *, now: datetime) -> Principal:
        if credential.startswith(f"{KEY_PREFIX}_"):
            return self.keys.verify(credential, now=now)
        if self.jwt is None:
            raise AuthenticationError("the credential is not a known API key")
        return self.jwt.verify(credential, now=now)


def utcnow() -> datetime:
    """The clock the services pass into this module."""
    return datetime.now(UTC)
