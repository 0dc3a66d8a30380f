"""Who may ingest: API keys (hashed, constant-time) and JWTs, each needing `events:write`."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from unittest import mock

import httpx
import pytest

from chancery import auth
from chancery.auth import KeyRing, Scope, new_api_key
from tests.twins.ingest import InMemoryEventPublisher, InMemoryIdempotencyStore

from .support import NOW, Credentials, credentials, ingest_client, make_event

pytestmark = pytest.mark.unit


@pytest.fixture
def creds() -> Credentials:
    return credentials()


@pytest.fixture
async def client(creds: Credentials) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(InMemoryEventPublisher(), InMemoryIdempotencyStore(), creds) as c:
        yield c


async def post(client: httpx.AsyncClient, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    if authorization is None:
        client.headers.pop("Authorization", None)
    return await client.post("/v1/events", json=make_event(), headers=headers)


@pytest.mark.parametrize(
    ("authorization", "words"),
    [
        (None, "missing credentials"),
        ("", "missing credentials"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <credential>'"),
        ("Bearer ", "must be 'Bearer <credential>'"),
        ("Bearer chk_000000000000_" + "A" * 43, "API key is not valid"),
        ("Bearer not-a-key-nor-a-token", "token is not valid"),
    ],
)
async def test_unauthenticated_is_401_with_a_clear_message(
    client: httpx.AsyncClient, authorization: str | None, words: str
) -> None:
    response = await post(client, authorization)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]


async def test_a_key_without_the_scope_is_403_naming_it(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    response = await post(client, f"Bearer {creds.reader}")

    assert response.status_code == 403
    assert "events:write" in response.json()["detail"]
    assert "events:read" in response.json()["detail"]


async def test_a_writer_key_is_accepted(client: httpx.AsyncClient, creds: Credentials) -> None:
    assert (await post(client, f"Bearer {creds.writer}")).status_code == 202


async def test_a_key_with_one_character_changed_is_refused(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    last = creds.writer[-1]
    tampered = creds.writer[:-1] + ("A" if last != "A" else "B")
    assert (await post(client, f"Bearer {tampered}")).status_code == 401


async def test_a_jwt_with_the_scope_is_accepted(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    token = creds.token(Scope.EVENTS_WRITE)
    assert (await post(client, f"Bearer {token}")).status_code == 202


async def test_a_jwt_without_the_scope_is_403(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    token = creds.token(Scope.EVENTS_READ)
    response = await post(client, f"Bearer {token}")
    assert response.status_code == 403
    assert "events:write" in response.json()["detail"]


async def test_an_expired_jwt_is_401(client: httpx.AsyncClient, creds: Credentials) -> None:
    token = creds.token(
        Scope.EVENTS_WRITE, ttl=timedelta(minutes=1), now=datetime.now(UTC) - timedelta(hours=1)
    )
    response = await post(client, f"Bearer {token}")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_a_tampered_jwt_is_401(client: httpx.AsyncClient, creds: Credentials) -> None:
    header, payload, signature = creds.token(Scope.EVENTS_READ).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "events:write"  # grant itself the scope, keep the old signature
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    response = await post(client, f"Bearer {header}.{forged}.{signature}")

    assert response.status_code == 401
    assert "not valid" in response.json()["detail"]


async def test_a_jwt_signed_with_another_secret_is_401(client: httpx.AsyncClient) -> None:
    other = auth.JwtVerifier(
        "another-secret-of-enough-length-0123456789abcdef", "chancery", "chancery"
    )
    token = other.issue(
        "mallory", [Scope.EVENTS_WRITE], now=datetime.now(UTC), ttl=timedelta(minutes=5)
    )
    assert (await post(client, f"Bearer {token}")).status_code == 401


def test_keys_are_stored_as_digests_only() -> None:
    key, record = new_api_key("k", [Scope.EVENTS_WRITE], now=NOW)
    assert key not in record.model_dump_json()
    assert record.sha256 == auth.digest(key)


def test_keys_are_compared_in_constant_time_even_for_unknown_ids() -> None:
    key, record = new_api_key("k", [Scope.EVENTS_WRITE], now=NOW)
    ring = KeyRing([record])
    unknown = "chk_ffffffffffff_" + "A" * 43
    with mock.patch("chancery.auth.hmac.compare_digest", wraps=hmac.compare_digest) as cmp:
        ring.verify(key, now=NOW)
        with pytest.raises(auth.AuthenticationError):
            ring.verify(unknown, now=NOW)
        with pytest.raises(auth.AuthenticationError):
            ring.verify("garbage", now=NOW)
    assert cmp.call_count == 3  # a compare for a known id, an unknown id and a malformed key


def test_an_expired_key_is_refused() -> None:
    key, record = new_api_key("k", [Scope.EVENTS_WRITE], now=NOW, expires=NOW + timedelta(days=1))
    ring = KeyRing([record])
    ring.verify(key, now=NOW)
    with pytest.raises(auth.AuthenticationError, match="expired"):
        ring.verify(key, now=NOW + timedelta(days=2))


def test_a_tokens_expiry_is_judged_by_the_injected_clock_alone() -> None:
    verifier = auth.JwtVerifier("s" * 32, "chancery", "chancery", leeway_s=0)
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    token = verifier.issue("k", [Scope.EVENTS_WRITE], now=long_ago, ttl=timedelta(minutes=5))
    # Valid at the clock's 'now', though the wall clock is decades past its expiry.
    assert verifier.verify(token, now=long_ago + timedelta(minutes=4)).subject == "k"
    with pytest.raises(auth.AuthenticationError, match="expired"):
        verifier.verify(token, now=long_ago + timedelta(minutes=5))
