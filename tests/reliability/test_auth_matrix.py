"""Scenario 6: the auth matrix, on both services, over real HTTP.

Every credential a careless or hostile client may present (none, a wrong key, a malformed
one, another scheme, an expired key, a key without the scope, expired, tampered, foreign,
unsigned and mis-addressed JWTs) against every operation that needs one: ingest's two
writes, every read of the API and every webhook subscription operation (the lists come from
the API's own OpenAPI document, so a new route cannot be forgotten), including the stream
with `?access_token=`. No credential of the matrix has the scope `subscriptions:write`, so a
valid one gets 403 there. Each gets its
expected status with a problem body (401 with `WWW-Authenticate: Bearer`), and nothing is
written: the topic's and the dead-letter topic's end offsets and every Redis key and value
are the same after the matrix as before. The right credentials then do work (the controls),
so the refusals are not the stack being down.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio

from chancery.auth import Authenticator, JwtVerifier, Scope, new_api_key
from tests.e2e.conftest import BATCH_TYPE, JWT_SECRET, Keys, make_keys
from tests.unit.ingest.support import make_event

from .evidence import nothing_written, problem_shape, written
from .stack import EVENT_TYPE, Services, running

pytestmark = pytest.mark.reliability

OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}
# The Atlas's pages, assets and sign-in take no credential: they hold no data (the page reads
# it from /v1 with the browser's session), and /atlas/session only says whether one is valid.
ATLAS_PATHS = {
    "/",
    "/relations/{a}/{b}",
    "/people/{person_id}",
    "/login",
    "/logout",
    "/atlas/session",
    "/atlas/assets/{name}",
}
PATH_VALUES = {
    "a": "CHN",
    "b": "USA",
    "c": "CHN",
    "person_id": "li-hui",
    "event_id": "seed-1",
    "subscription_id": "sub_" + "0" * 20,
}
SUBSCRIPTIONS = "/v1/subscriptions"
QUERY_VALUES = {"/v1/relations": {"country": "CHN"}, "/v1/visits": {"country": "UKR"}}
ISSUER = "chancery"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tampered(token: str) -> str:
    """The same signature over a payload that grants every scope."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "admin events:read events:write"
    claims["sub"] = "mallory"
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def _unsigned(scopes: str) -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "mallory", "iss": ISSUER, "aud": ISSUER, "exp": now + 600, "scope": scopes}
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _jwt(secret: str, scopes: str, *, exp_in_s: int = 600, aud: str = ISSUER) -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "client", "iss": ISSUER, "aud": aud, "exp": now + exp_in_s, "scope": scopes}
    return jwt.encode(claims, secret, algorithm="HS256")


def credentials(keys: Keys, expired_key: str) -> dict[str, tuple[str | None, int, int]]:
    """name -> (Authorization header, expected status at ingest, expected status at the API).

    2xx expectations are the controls, sent after the refusals have been checked.
    """
    both = "events:read events:write"
    good_jwt = keys.token(Scope.EVENTS_READ, Scope.EVENTS_WRITE)
    unknown_key = "chk_0123456789ab_" + "A" * 43
    return {
        "no credentials": (None, 401, 401),
        "bearer without a credential": ("Bearer", 401, 401),
        "another scheme": (f"Basic {_b64(b'reader:' + keys.read.encode())}", 401, 401),
        "unknown API key": (f"Bearer {unknown_key}", 401, 401),
        "malformed API key": (f"Bearer {keys.read[:-3]}", 401, 401),
        "a key with a byte changed": (
            f"Bearer {keys.write[:-1]}{'B' if keys.write[-1] != 'B' else 'C'}",
            401,
            401,
        ),
        "expired API key": (f"Bearer {expired_key}", 401, 401),
        "forged session": ("Session v1.0123456789ab.9999999999.bm90LWEtbWFj", 401, 401),
        "admin-only key": (f"Bearer {keys.nothing}", 403, 403),
        "read key": (f"Bearer {keys.read}", 403, 200),
        "write key": (f"Bearer {keys.write}", 202, 403),
        "expired JWT": (f"Bearer {_jwt(JWT_SECRET, both, exp_in_s=-3600)}", 401, 401),
        "tampered JWT": (f"Bearer {_tampered(keys.token(Scope.EVENTS_READ))}", 401, 401),
        "JWT of another secret": (f"Bearer {_jwt('another-secret-' + 'x' * 32, both)}", 401, 401),
        "unsigned JWT (alg none)": (f"Bearer {_unsigned(both)}", 401, 401),
        "JWT for another audience": (f"Bearer {_jwt(JWT_SECRET, both, aud='other')}", 401, 401),
        "JWT signature removed": (f"Bearer {good_jwt.rsplit('.', 1)[0]}.", 401, 401),
        "read JWT": (f"Bearer {keys.token(Scope.EVENTS_READ)}", 403, 200),
        "write JWT": (f"Bearer {keys.token(Scope.EVENTS_WRITE)}", 202, 403),
    }


@pytest_asyncio.fixture(loop_scope="session")
async def matrix_stack(kafka_bootstrap: str, stack_db: str) -> AsyncIterator[tuple[Services, str]]:
    keys, authenticator = make_keys()
    expired, record = new_api_key(
        "expired-writer",
        [Scope.EVENTS_READ, Scope.EVENTS_WRITE],
        now=datetime.now(UTC) - timedelta(days=2),
        expires=datetime.now(UTC) - timedelta(days=1),
    )
    authenticator.keys.add(record)
    assert isinstance(authenticator, Authenticator)
    assert authenticator.jwt == JwtVerifier(JWT_SECRET, ISSUER, ISSUER)
    async with running(
        bootstrap=kafka_bootstrap, redis_url=stack_db, keys=keys, authenticator=authenticator
    ) as services:
        seeds = [make_event(id_="seed-1"), make_event("diplomacy.envoy.appointed", "seed-2")]
        await services.until_applied(await services.post(seeds))
        yield services, expired


def _url(path: str) -> str:
    url = path
    for name, value in PATH_VALUES.items():
        url = url.replace("{" + name + "}", value)
    assert "{" not in url, f"no value for a parameter of {path}"
    return url


def subscription_operations(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """Every webhook subscription operation: (method, URL)."""
    return [
        (method.upper(), _url(path))
        for path, operations in openapi["paths"].items()
        if path.startswith(SUBSCRIPTIONS)
        for method in operations
    ]


def api_operations(openapi: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """Every GET of the API that needs credentials, with valid parameters."""
    out = []
    for path, operations in openapi["paths"].items():
        if path in OPEN_PATHS | ATLAS_PATHS or path.startswith(SUBSCRIPTIONS):
            continue
        assert set(operations) == {"get"}, f"{path}: {set(operations)}"
        url = path
        for name, value in PATH_VALUES.items():
            url = url.replace("{" + name + "}", value)
        assert "{" not in url, f"no value for a parameter of {path}"
        out.append((url, QUERY_VALUES.get(path, {})))
    return out


async def _status(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> tuple[int, httpx.Headers, Any]:
    """Status, headers and (for an error) the JSON body; a stream is closed at once."""
    async with client.stream(method, url, **kwargs) as response:
        if response.status_code == 200 and url.endswith("/stream"):
            return 200, response.headers, None
        await response.aread()
        body = (
            response.json()
            if response.headers.get("content-type", "").endswith("json")
            else response.text
        )
        return response.status_code, response.headers, body


async def test_every_credential_gets_its_status_and_nothing_is_written(
    matrix_stack: tuple[Services, str],
) -> None:
    services, expired_key = matrix_stack
    matrix = credentials(services.keys, expired_key)
    openapi = (await services.api.get("/openapi.json")).json()
    operations = api_operations(openapi)
    assert len(operations) == 12, operations
    managing = subscription_operations(openapi)
    assert len(managing) == 7, managing
    before = await written(
        services.bootstrap, [services.topic, f"{services.topic}.dlq"], services.redis_url
    )
    refusals = 0
    wrong: list[str] = []
    async with httpx.AsyncClient(timeout=30) as client:

        def check(what: str, got: tuple[int, httpx.Headers, Any], expected: int) -> None:
            status, headers, body = got
            if status != expected:
                wrong.append(f"{what}: {status} (expected {expected}): {str(body)[:200]}")
                return
            if status in (401, 403):
                wrong.extend(f"{what}: {p}" for p in problem_shape(body, status))
                if headers.get("content-type") != "application/problem+json":
                    wrong.append(f"{what}: content-type {headers.get('content-type')}")
            if status == 401 and headers.get("www-authenticate") != "Bearer":
                wrong.append(f"{what}: WWW-Authenticate {headers.get('www-authenticate')!r}")

        for n, (name, (header, at_ingest, at_api)) in enumerate(matrix.items()):
            auth = {"Authorization": header} if header is not None else {}
            if at_ingest >= 400:
                event = make_event(id_=f"refused-{n}")
                single = await _status(
                    client,
                    "POST",
                    f"{services.ingest_url}/v1/events",
                    content=json.dumps(event),
                    headers={**auth, "Content-Type": EVENT_TYPE},
                )
                check(f"{name}: POST /v1/events", single, at_ingest)
                batch = await _status(
                    client,
                    "POST",
                    f"{services.ingest_url}/v1/events/batch",
                    content=json.dumps([event, make_event(id_=f"refused-{n}-b")]),
                    headers={**auth, "Content-Type": BATCH_TYPE},
                )
                check(f"{name}: POST /v1/events/batch", batch, at_ingest)
                refusals += 2
            for url, params in operations:
                got = await _status(
                    client, "GET", f"{services.api_url}{url}", params=params, headers=auth
                )
                check(f"{name}: GET {url}", got, at_api)
                refusals += at_api >= 400
            for method, url in managing:
                body = {"url": "http://127.0.0.1:9/"} if method == "POST" else None
                got = await _status(
                    client, method, f"{services.api_url}{url}", json=body, headers=auth
                )
                check(f"{name}: {method} {url}", got, 401 if at_api == 401 else 403)
                refusals += 1
            # EventSource cannot send headers: the stream takes the credential in the query.
            if header is not None and header.startswith("Bearer ") and at_api >= 400:
                credential = header.removeprefix("Bearer ")
                got = await _status(
                    client,
                    "GET",
                    f"{services.api_url}/v1/stream",
                    params={"access_token": credential},
                )
                check(f"{name}: GET /v1/stream?access_token", got, at_api)
                refusals += 1
        # ?access_token= is the stream's alone: elsewhere a valid one is not a credential.
        got = await _status(
            client,
            "GET",
            f"{services.api_url}/v1/relations/CHN/USA",
            params={"access_token": services.keys.read},
        )
        check("GET /v1/relations with ?access_token", got, 401)

    after = await written(
        services.bootstrap, [services.topic, f"{services.topic}.dlq"], services.redis_url
    )
    assert wrong == [], "\n".join(wrong)
    assert nothing_written(before, after) == []
    assert refusals >= 150

    # The controls: the right credentials write, and what they wrote is read back.
    for n, (name, (header, at_ingest, _)) in enumerate(matrix.items()):
        if at_ingest == 202:
            assert header is not None
            response = await services.ingest.post(
                "/v1/events",
                content=json.dumps(make_event(id_=f"control-{n}")),
                headers={"Authorization": header, "Content-Type": EVENT_TYPE},
            )
            assert response.status_code == 202, f"{name}: {response.text}"
            position = response.json()["position"]
            read = await services.api.get(
                f"/v1/events/control-{n}", params={"min_position": position}
            )
            assert read.status_code == 200, read.text
