"""The API over its in-memory twin: the routes' statuses, headers and bodies, no server.

`api(...)` builds the app around an `InMemoryReadModelReader` holding the article's events,
with real API keys and JWTs, and a clock fixed on the article's day (12 May 2023, noon UTC).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from chancery.auth import Authenticator, JwtVerifier, KeyRing, Scope, new_api_key
from chancery.contract import Event, parse_incoming
from chancery.settings import ApiSettings
from services.api.app import create_app
from tests.twins.read_models import InMemoryReadModelReader

SEEDS = Path(__file__).resolve().parents[3] / "seeds" / "article.jsonl"
NOON = datetime(2023, 5, 12, 12, tzinfo=UTC)
RECORDED = datetime(2023, 5, 12, 9, tzinfo=UTC)
SECRET = "unit-secret-of-at-least-thirty-two-bytes"


def article() -> list[Event]:
    lines = SEEDS.read_text(encoding="utf-8").splitlines()
    return [parse_incoming(json.loads(line)) for line in lines if line]


@dataclass
class Keys:
    read: str
    write: str
    jwt: JwtVerifier
    authenticator: Authenticator

    def token(self, *scopes: Scope, ttl_s: int = 600) -> str:
        return self.jwt.issue("unit", scopes, now=datetime.now(UTC), ttl=timedelta(seconds=ttl_s))


@pytest.fixture(scope="session")
def keys() -> Keys:
    now = datetime.now(UTC)
    read, read_record = new_api_key("reader", [Scope.EVENTS_READ], now=now)
    write, write_record = new_api_key("writer", [Scope.EVENTS_WRITE], now=now)
    jwt = JwtVerifier(SECRET, "chancery", "chancery")
    return Keys(read, write, jwt, Authenticator(KeyRing([read_record, write_record]), jwt))


@pytest.fixture
def twin() -> InMemoryReadModelReader:
    """The article, each event recorded a minute after the previous one from 09:00."""
    reader = InMemoryReadModelReader()
    for i, event in enumerate(article()):
        reader.append(event, recorded_at=RECORDED + timedelta(minutes=i))
    return reader


ApiFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api(twin: InMemoryReadModelReader, keys: Keys) -> ApiFactory:
    """`async with api(**settings) as client:` a client of the app (authenticated as reader)."""

    @asynccontextmanager
    async def open_client(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = ApiSettings(**{"min_position_wait_s": 0.3, **overrides})
        app = create_app(
            settings, reader=twin, authenticator=keys.authenticator, clock=lambda: NOON
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api",
                headers={"Authorization": f"Bearer {keys.read}"},
            ) as client,
        ):
            yield client

    return open_client
