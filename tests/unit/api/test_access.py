"""Auth (scope events:read by API key or JWT), CORS with explicit origins, open operations,
and the docs: every endpoint documented with an example."""

from __future__ import annotations

import pytest

from chancery.auth import Scope
from chancery.settings import ApiSettings
from services.api.app import create_app
from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.api.conftest import ApiFactory, Keys

pytestmark = pytest.mark.unit

READS = [
    "/v1/relations/CHN/USA",
    "/v1/relations?country=CHN",
    "/v1/countries/CHN/timeline",
    "/v1/itineraries/li-hui",
    "/v1/visits?country=UKR",
    "/v1/people/li-hui",
    "/v1/events/li-hui-named-envoy",
    "/v1/stream",
]


@pytest.mark.parametrize("path", READS)
async def test_reads_need_credentials(api: ApiFactory, path: str) -> None:
    async with api() as client:
        response = await client.get(path, headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", READS[:-1])
async def test_reads_need_the_events_read_scope(api: ApiFactory, keys: Keys, path: str) -> None:
    async with api() as client:
        writer = await client.get(path, headers={"Authorization": f"Bearer {keys.write}"})
        token = keys.token(Scope.EVENTS_READ)
        jwt = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        expired = await client.get(
            path, headers={"Authorization": f"Bearer {keys.token(Scope.EVENTS_READ, ttl_s=-120)}"}
        )
    assert writer.status_code == 403
    assert "events:read" in writer.json()["detail"]
    assert jwt.status_code == 200
    assert expired.status_code == 401


async def test_access_token_in_the_query_is_only_for_the_stream(
    api: ApiFactory, keys: Keys
) -> None:
    token = keys.token(Scope.EVENTS_READ)
    async with api() as client:
        relation = await client.get(
            "/v1/relations/CHN/USA", params={"access_token": token}, headers={"Authorization": ""}
        )
        weak = await client.get(
            "/v1/stream",
            params={"access_token": keys.token(Scope.EVENTS_WRITE)},
            headers={"Authorization": ""},
        )
    assert relation.status_code == 401
    assert weak.status_code == 403


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
async def test_operations_need_no_credentials(api: ApiFactory, path: str) -> None:
    async with api() as client:
        response = await client.get(path, headers={"Authorization": ""})
    assert response.status_code == 200


async def test_cors_answers_explicit_origins_only(api: ApiFactory) -> None:
    async with api(cors_origins=["https://app.example"]) as client:
        allowed = await client.get(
            "/v1/relations/CHN/USA", headers={"Origin": "https://app.example"}
        )
        other = await client.get("/v1/relations/CHN/USA", headers={"Origin": "https://x.example"})
        preflight = await client.options(
            "/v1/relations/CHN/USA",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Chancery-Min-Position, If-None-Match",
            },
        )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    exposed = allowed.headers["access-control-expose-headers"]
    assert {"Chancery-Position", "Chancery-Lag", "ETag"} <= set(exposed.split(", "))
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200


def test_a_wildcard_origin_is_refused(twin: InMemoryReadModelReader) -> None:
    with pytest.raises(ValueError, match="explicit origins"):
        create_app(ApiSettings(cors_origins=["*"]), reader=twin)


async def test_every_endpoint_is_documented_with_an_example(api: ApiFactory) -> None:
    async with api() as client:
        spec = (await client.get("/openapi.json")).json()
    operations = {
        (path, method): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if path.startswith("/v1/")
    }
    reads = {k: op for k, op in operations.items() if "subscriptions" not in op["tags"]}
    assert len(reads) == 12
    assert len(operations) - len(reads) == 7  # webhook subscriptions: CRUD, pause, resume, ...
    for (path, method), op in operations.items():
        success = min(code for code in op["responses"] if code.startswith("2"))
        if success == "204":
            assert method == "delete", path
            continue
        (media,) = op["responses"][success]["content"].values()
        assert "example" in media, path
        assert op.get("summary"), path
    relation = operations[("/v1/relations/{a}/{b}", "get")]
    names = {p["name"] for p in relation["parameters"]}
    assert {"a", "b", "as_of", "known_at", "min_position", "Chancery-Min-Position"} <= names
    assert "text/event-stream" in operations[("/v1/stream", "get")]["responses"]["200"]["content"]


async def test_the_webhook_request_is_described(api: ApiFactory) -> None:
    async with api() as client:
        spec = (await client.get("/openapi.json")).json()
    pushed = spec["webhooks"]["chancery-event"]["post"]
    headers = {p["name"] for p in pushed["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    body = pushed["requestBody"]["content"]
    assert set(body) == {"application/cloudevents+json", "application/json"}
    assert body["application/cloudevents+json"]["example"]["specversion"] == "1.0"
    assert "HMAC-SHA256" in pushed["description"]
