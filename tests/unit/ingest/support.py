"""What the ingest tests share: events as clients send them, credentials, an app and a client.

`make_event(type, id)` is the golden event of that type with a new id (and any top-level
field replaced); `Credentials` holds an API-key ring and a JWT secret with keys of every
kind the tests need.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import httpx
from fastapi import FastAPI

from chancery.auth import Authenticator, JwtVerifier, KeyRing, Scope, new_api_key
from chancery.settings import IngestSettings
from services.ingest.app import create_app
from services.ingest.idempotency import IdempotencyStore
from services.ingest.publisher import EventPublisher
from services.ingest.targets import TargetIndex

SOURCE = "https://chancery.example/tests/ingest"
NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def golden() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in (resources.files("chancery.contract") / "golden").iterdir():
        if item.name.endswith(".json"):
            event = json.loads(item.read_text())
            event.pop("recordedtime", None)
            event.pop("partitionkey", None)
            out[event["type"]] = event
    return out


GOLDEN = golden()


def make_event(
    type_: str = "diplomacy.event.coded", id_: str = "e-1", **fields: Any
) -> dict[str, Any]:
    event = copy.deepcopy(GOLDEN[type_])
    event["id"] = id_
    event["source"] = SOURCE
    event.update(fields)
    return event


def retraction(id_: str, target_id: str, target_source: str = SOURCE) -> dict[str, Any]:
    return make_event(
        "diplomacy.event.retracted",
        id_,
        data={"target": {"source": target_source, "id": target_id}, "reason": "reported twice"},
    )


@dataclass(frozen=True)
class Credentials:
    authenticator: Authenticator
    writer: str  # API key with events:write
    reader: str  # API key with events:read only
    jwt: JwtVerifier

    def token(
        self, *scopes: Scope, ttl: timedelta = timedelta(minutes=5), now: datetime | None = None
    ) -> str:
        return self.jwt.issue("client", scopes, now=now or datetime.now(UTC), ttl=ttl)


def credentials() -> Credentials:
    ring = KeyRing()
    writer, writer_record = new_api_key("writer", [Scope.EVENTS_WRITE], now=NOW)
    reader, reader_record = new_api_key("reader", [Scope.EVENTS_READ], now=NOW)
    ring.add(writer_record)
    ring.add(reader_record)
    jwt = JwtVerifier(JWT_SECRET, "chancery", "chancery")
    return Credentials(Authenticator(keys=ring, jwt=jwt), writer, reader, jwt)


def settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {"publish_timeout_s": 1.0, "retry_after_s": 2, **overrides}
    return IngestSettings(**values)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and an httpx client on it (no network)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


@asynccontextmanager
async def ingest_client(
    publisher: EventPublisher,
    idempotency: IdempotencyStore,
    creds: Credentials,
    *,
    targets: TargetIndex | None = None,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings(**overrides),
        publisher=publisher,
        idempotency=idempotency,
        authenticator=creds.authenticator,
        targets=targets,
    )
    async with running(app) as client:
        client.headers["Authorization"] = f"Bearer {creds.writer}"
        yield client
