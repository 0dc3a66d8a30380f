"""The real stack for end-to-end tests, against the session's real Kafka and Redis.

`stack` (one per test module): a fresh topic (6 partitions, and its .dlq) and a fresh Redis
database; ingest (its app, over ASGI, with its real Kafka producer and Redis store), the
live projector (`run_live`, as a task in the test loop) and the API served by uvicorn on a
free port. Clients authenticate with API keys and JWTs made for the module.

`redis_readers` (per test): a flushed database and fresh `RedisReadModelReader`s on it, for
tests that fill Redis with the projection directly (tests/e2e/projecting.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from redis.asyncio import Redis

from chancery.auth import Authenticator, JwtVerifier, KeyRing, Scope, new_api_key
from chancery.settings import ApiSettings, IngestSettings, ProjectorSettings
from services.api.app import create_app as create_api
from services.api.redis_reader import RedisReadModelReader
from services.cli.local import chancery_topics, ensure_topics_blocking, free_ports
from services.ingest.app import create_app as create_ingest
from services.projector.app import run_live
from tests.servers import _Databases

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "article.jsonl"
PARTITIONS = 6
JWT_SECRET = "e2e-secret-of-at-least-thirty-two-bytes!"
BATCH_TYPE = "application/cloudevents-batch+json"


def seed_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SEEDS.read_text(encoding="utf-8").splitlines() if line]


class QuietServer(uvicorn.Server):
    """uvicorn inside the test loop: the test session, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a free loopback port; yields its base URL."""
    (port,) = free_ports(1)
    server = QuietServer(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{port}")
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Keys:
    read: str
    write: str
    nothing: str  # a valid key without events:read
    jwt: JwtVerifier

    def token(self, *scopes: Scope, ttl_s: int = 600) -> str:
        return self.jwt.issue(
            "e2e-browser", scopes, now=datetime.now(UTC), ttl=timedelta(seconds=ttl_s)
        )


def make_keys() -> tuple[Keys, Authenticator]:
    now = datetime.now(UTC)
    read, read_record = new_api_key("e2e-reader", [Scope.EVENTS_READ], now=now)
    write, write_record = new_api_key("e2e-writer", [Scope.EVENTS_WRITE], now=now)
    nothing, nothing_record = new_api_key("e2e-nobody", [Scope.ADMIN], now=now)
    jwt = JwtVerifier(JWT_SECRET, "chancery", "chancery")
    authenticator = Authenticator(
        keys=KeyRing([read_record, write_record, nothing_record]), jwt=jwt, enabled=True
    )
    return Keys(read, write, nothing, jwt), authenticator


async def post_batch(ingest: httpx.AsyncClient, events: Sequence[Mapping[str, Any]]) -> str:
    """One batch through ingest, which must accept it; the position covering it."""
    response = await ingest.post(
        "/v1/events/batch",
        content=json.dumps(list(events)),
        headers={"Content-Type": BATCH_TYPE},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["position"])


@dataclass
class Stack:
    topic: str
    redis_url: str
    api_url: str
    ingest: httpx.AsyncClient
    api: httpx.AsyncClient
    keys: Keys

    async def post(self, events: Sequence[dict[str, Any]]) -> str:
        """Send events through ingest (one batch); returns the position covering them."""
        return await post_batch(self.ingest, events)

    async def get(self, path: str, *, min_position: str | None = None, **params: Any) -> Any:
        """GET from the API, reading our writes; asserts 200 and returns the JSON body."""
        if min_position is not None:
            params["min_position"] = min_position
        response = await self.api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(kafka_bootstrap: str, _redis_databases: _Databases) -> AsyncIterator[Stack]:
    topic = f"e2e.{uuid.uuid4().hex[:10]}"
    ensure_topics_blocking(
        kafka_bootstrap, chancery_topics(topic, f"{topic}.dlq", partitions=PARTITIONS)
    )
    redis_url = _redis_databases.take()
    keys, authenticator = make_keys()
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic": topic,
        "dead_letter_topic": f"{topic}.dlq",
        "redis_url": redis_url,
        "log_json": False,
    }
    (status_port,) = free_ports(1)
    projector_settings = ProjectorSettings(
        **common, group_id=f"e2e-{topic}", status_port=status_port, fetch_timeout_ms=50
    )
    api_settings = ApiSettings(
        **common,
        min_position_wait_s=2.0,
        stream_ping_s=0.3,
        max_streams_per_client=3,
        cors_origins=["https://app.example"],
    )
    ingest_app = create_ingest(IngestSettings(**common), authenticator=authenticator)
    stop = asyncio.Event()
    projector = asyncio.create_task(run_live(projector_settings, stop), name="e2e-projector")
    try:
        async with (
            ingest_app.router.lifespan_context(ingest_app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=ingest_app),
                base_url="http://ingest",
                headers={"Authorization": f"Bearer {keys.write}"},
                timeout=30,
            ) as ingest,
            serve(create_api(api_settings, authenticator=authenticator)) as api_url,
            httpx.AsyncClient(
                base_url=api_url, headers={"Authorization": f"Bearer {keys.read}"}, timeout=30
            ) as api,
        ):
            await _until_ready(api, projector)
            yield Stack(topic, redis_url, api_url, ingest, api, keys)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(projector, 30)


async def _until_ready(api: httpx.AsyncClient, projector: asyncio.Task[None]) -> None:
    """The projector has joined the group and marked the (empty) read models ready."""
    async with asyncio.timeout(90):
        while True:
            if projector.done():
                projector.result()  # raises what stopped it
            if (await api.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)


@dataclass
class RedisReaders:
    """A flushed database, and fresh readers on it (each with empty caches)."""

    redis: Redis
    blocking: Redis

    def reader(self) -> RedisReadModelReader:
        return RedisReadModelReader(self.redis, self.blocking, topic="chancery.events")


@pytest_asyncio.fixture(loop_scope="session")
async def redis_readers(redis_db_url: str) -> AsyncIterator[RedisReaders]:
    redis = Redis.from_url(redis_db_url)
    blocking = Redis.from_url(redis_db_url, socket_timeout=None)
    try:
        yield RedisReaders(redis, blocking)
    finally:
        await blocking.aclose()
        await redis.aclose()
