"""Kept principals: reused per exact header while valid, never past the credential's expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chancery.auth import (
    AuthenticationError,
    Authenticator,
    JwtVerifier,
    KeyRing,
    Principal,
    Scope,
    new_api_key,
)
from services.api.principals import VerifiedPrincipals
from services.platform.keyfile import WatchedKeyRing
from tests.unit.test_keyfile import Clock

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)
SECRET = "unit-secret-of-at-least-thirty-two-bytes"


class Counting(Authenticator):
    calls: int = 0

    def authenticate(self, authorization: str | None, *, now: datetime) -> Principal:
        object.__setattr__(self, "calls", self.calls + 1)
        return super().authenticate(authorization, now=now)


def _principals(expires: datetime | None = None) -> tuple[VerifiedPrincipals, Counting, str]:
    key, record = new_api_key("reader", [Scope.EVENTS_READ], now=NOW, expires=expires)
    auth = Counting(KeyRing([record]), JwtVerifier(SECRET, "chancery", "chancery"))
    return VerifiedPrincipals(auth, ttl_s=30), auth, f"Bearer {key}"


def test_a_valid_key_is_verified_once_within_the_window() -> None:
    principals, auth, header = _principals()
    first = principals.authenticate(header, now=NOW)
    for s in range(29):
        assert principals.authenticate(header, now=NOW + timedelta(seconds=s)) == first
    verified = auth.calls
    principals.authenticate(header, now=NOW + timedelta(seconds=31))  # the window is over
    assert auth.calls > verified


def test_a_key_expiring_within_the_window_is_verified_each_time_and_then_refused() -> None:
    principals, auth, header = _principals(expires=NOW + timedelta(seconds=10))
    principals.authenticate(header, now=NOW)
    calls = auth.calls
    principals.authenticate(header, now=NOW + timedelta(seconds=5))
    assert auth.calls > calls  # not kept: it expires within the window
    with pytest.raises(AuthenticationError):
        principals.authenticate(header, now=NOW + timedelta(seconds=11))


def test_a_token_is_never_accepted_past_its_expiry() -> None:
    principals, _, _ = _principals()
    jwt = JwtVerifier(SECRET, "chancery", "chancery", leeway_s=0)
    token = jwt.issue("unit", [Scope.EVENTS_READ], now=NOW, ttl=timedelta(seconds=20))
    header = f"Bearer {token}"
    principals.authenticate(header, now=NOW)
    with pytest.raises(AuthenticationError):
        principals.authenticate(header, now=NOW + timedelta(seconds=60))


def test_failures_are_not_kept() -> None:
    principals, auth, _ = _principals()
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            principals.authenticate("Bearer chk_000000000000_" + "x" * 43, now=NOW)
    assert auth.calls == 3


def test_a_kept_key_is_refused_as_soon_as_the_keys_file_drops_it(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    key, record = new_api_key("reader", [Scope.EVENTS_READ], now=NOW)
    KeyRing([record]).save(keys_file)
    clock = Clock()
    auth = Authenticator(WatchedKeyRing(keys_file, clock=clock), None)
    principals = VerifiedPrincipals(auth, ttl_s=30)
    header = f"Bearer {key}"
    principals.authenticate(header, now=NOW)  # verified, and kept for 30 s
    KeyRing().save(keys_file)  # `chancery keys revoke`
    clock.now += 1.0  # the ring looks at the file again
    with pytest.raises(AuthenticationError):
        principals.authenticate(header, now=NOW + timedelta(seconds=2))
