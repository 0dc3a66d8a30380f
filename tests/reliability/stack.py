"""The three services, running for a reliability test, against whichever Kafka and Redis it
chooses (the session's, or a dedicated broker / server it is about to break).

`running(...)` is an async context manager: a topic (6 partitions, and its .dlq) on the given
broker, then ingest and the API served by uvicorn on free loopback ports (real HTTP, so raw
sockets and schemathesis reach them as any client would), and, unless asked not to, the live
projector (`run_live`) as a task in the test loop. It yields `Services`: the URLs, the keys,
clients authenticated for reading and for writing, and the projector's task.

The pieces come from the end-to-end suite (tests/e2e/conftest.py): `serve` and `make_keys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from chancery.auth import Authenticator
from chancery.settings import ApiSettings, IngestSettings, ProjectorSettings
from services.api.app import create_app as create_api
from services.cli.local import chancery_topics, ensure_topics_blocking, free_ports
from services.ingest.app import create_app as create_ingest
from services.projector.app import run_live
from tests.e2e.conftest import Keys, post_batch, serve

PARTITIONS = 6
EVENT_TYPE = "application/cloudevents+json"
READY_TIMEOUT_S = 90


@dataclass
class Services:
    bootstrap: str
    topic: str
    redis_url: str
    ingest_url: str
    api_url: str
    keys: Keys
    ingest: httpx.AsyncClient  # authenticated with the write key
    api: httpx.AsyncClient  # authenticated with the read key
    projector: asyncio.Task[None] | None

    def projector_alive(self) -> None:
        """Raise what stopped the projector, if it stopped."""
        if self.projector is not None and self.projector.done():
            self.projector.result()
            raise AssertionError("the projector returned while it should be running")

    async def post(self, events: Sequence[Mapping[str, Any]]) -> str:
        """One batch through ingest; asserts 202 and returns the position covering it."""
        return await post_batch(self.ingest, events)

    async def load(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Post `events` as one batch and wait until the projector has applied them."""
        await self.until_applied(await self.post(events))

    async def until_applied(self, position: str, timeout_s: float = 120) -> None:
        """Wait until the API answers at `position` or later (the projector applied it)."""
        async with asyncio.timeout(timeout_s):
            while True:
                self.projector_alive()
                response = await self.api.get(
                    "/v1/relations/CHN/USA", params={"min_position": position}
                )
                if response.status_code == 200:
                    return
                assert response.status_code in (503, 504), response.text
                await asyncio.sleep(0.1)


def create_topic(bootstrap: str, topic: str) -> str:
    ensure_topics_blocking(bootstrap, chancery_topics(topic, f"{topic}.dlq", partitions=PARTITIONS))
    return topic


def new_topic_name(tag: str) -> str:
    return f"rel.{tag}.{uuid.uuid4().hex[:10]}"


StackFactory = Callable[..., contextlib.AbstractAsyncContextManager["Services"]]
"""`running` with the session's Kafka, a database and the keys already given."""


@contextlib.asynccontextmanager
async def running(
    *,
    bootstrap: str,
    redis_url: str,
    keys: Keys,
    authenticator: Authenticator,
    topic: str | None = None,
    projector: bool = True,
    wait_ready: bool = True,
    ingest: Mapping[str, Any] | None = None,
    api: Mapping[str, Any] | None = None,
    projector_settings: Mapping[str, Any] | None = None,
    shared: Mapping[str, Any] | None = None,
) -> AsyncIterator[Services]:
    """Ingest, API (and the live projector) on `topic` (created when None) and `redis_url`;
    `shared`: settings of all three (`redis_cluster`, the topic's durability, ...)."""
    if topic is None:
        topic = new_topic_name("stack")
        await asyncio.to_thread(create_topic, bootstrap, topic)
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "topic": topic,
        "dead_letter_topic": f"{topic}.dlq",
        "redis_url": redis_url,
        "log_json": False,
        **(shared or {}),
    }
    (status_port,) = free_ports(1)
    ingest_app = create_ingest(
        IngestSettings(**common, **(ingest or {})), authenticator=authenticator
    )
    api_app = create_api(
        ApiSettings(**{**common, "min_position_wait_s": 2.0, "stream_ping_s": 0.5, **(api or {})}),
        authenticator=authenticator,
    )
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    if projector:
        settings = ProjectorSettings(
            **{
                **common,
                "group_id": f"rel-{topic}",
                "status_port": status_port,
                "fetch_timeout_ms": 50,
                **(projector_settings or {}),
            }
        )
        task = asyncio.create_task(run_live(settings, stop), name=f"projector-{topic}")
    try:
        async with (
            serve(ingest_app) as ingest_url,
            serve(api_app) as api_url,
            httpx.AsyncClient(
                base_url=ingest_url,
                headers={"Authorization": f"Bearer {keys.write}"},
                timeout=30,
            ) as ingest_client,
            httpx.AsyncClient(
                base_url=api_url, headers={"Authorization": f"Bearer {keys.read}"}, timeout=30
            ) as api_client,
        ):
            services = Services(
                bootstrap,
                topic,
                redis_url,
                ingest_url,
                api_url,
                keys,
                ingest_client,
                api_client,
                task,
            )
            if wait_ready:
                await until_ready(services)
            yield services
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)


async def until_ready(services: Services) -> None:
    """Ingest reaches Kafka and Redis; with a projector, the API serves a ready version."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        for client in (services.ingest, services.api if services.projector else None):
            while client is not None:
                if (await client.get("/readyz")).status_code == 200:
                    break
                services.projector_alive()
                await asyncio.sleep(0.1)
