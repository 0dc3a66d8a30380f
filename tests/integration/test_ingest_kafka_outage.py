"""Kafka stops under a running ingest, then comes back: 503 with Retry-After in bounded time,
no 2xx for anything not in the log, /readyz says so, recovery without a restart, nothing
acknowledged lost and nothing appended twice.

The broker here is this module's own (a third JVM for a minute), not the session's: the test
stops it for seconds at a time, and any other test, or a session-scoped client, running
against the shared broker meanwhile would fail for reasons of ours. Its own broker also lets
the test use a short publish timeout without racing anyone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.cli.local import KafkaServer, chancery_topics, ensure_topics_blocking
from services.ingest.app import create_app
from tests.servers import private_kafka
from tests.unit.ingest.support import make_event, running

from .test_ingest import ids_in, ingest_settings, read_topic, wait_ready, writer_key

pytestmark = pytest.mark.integration

PUBLISH_TIMEOUT_S = 2.0
TOPIC = "outage.events"


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    with private_kafka(tmp_path_factory.mktemp("kafka-outage")) as server:
        ensure_topics_blocking(
            server.bootstrap_servers, chancery_topics(TOPIC, f"{TOPIC}.dlq", partitions=6)
        )
        yield server


async def post_until(
    client: httpx.AsyncClient, events: list[dict[str, object]], timeout_s: float
) -> httpx.Response:
    async with asyncio.timeout(timeout_s):
        while True:
            response = await client.post("/v1/events/batch", json=events)
            if response.status_code == 202:
                return response
            assert response.status_code == 503, response.text
            await asyncio.sleep(float(response.headers["Retry-After"]) / 4)


async def test_kafka_outage_is_503_then_recovers_without_loss_or_duplicates(
    own_kafka: KafkaServer, redis_db_url: str, tmp_path: Path
) -> None:
    keys_file, key = writer_key(tmp_path)
    bootstrap = own_kafka.bootstrap_servers
    settings = ingest_settings(
        bootstrap,
        TOPIC,
        redis_db_url,
        keys_file,
        publish_timeout_s=PUBLISH_TIMEOUT_S,
        retry_after_s=1,
    )
    app = create_app(settings)
    before = [make_event(id_=f"before-{i}") for i in range(20)]
    during = [[make_event(id_=f"during-{n}-{i}") for i in range(10)] for n in range(4)]
    async with running(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        await wait_ready(client)
        acknowledged = await client.post("/v1/events/batch", json=before)
        assert acknowledged.status_code == 202

        await asyncio.to_thread(own_kafka.stop)
        try:
            answers: list[tuple[httpx.Response, float]] = []
            for events in during:
                started = time.monotonic()
                response = await client.post("/v1/events/batch", json=events)
                answers.append((response, time.monotonic() - started))
            ready = await client.get("/readyz")
        finally:
            await asyncio.to_thread(own_kafka.start)
        for response, elapsed in answers:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "1"
            assert response.headers["content-type"] == "application/problem+json"
            assert elapsed < PUBLISH_TIMEOUT_S * 2 + 1, f"503 after {elapsed:.1f}s"
        # The first batch was handed to the producer before the outage was known: its outcome
        # stayed unknown for the publish timeout (its claims are held until Kafka answers).
        assert answers[0][1] >= PUBLISH_TIMEOUT_S * 0.9
        # Once the outage is known, refusals are immediate instead of waiting out a timeout.
        assert min(elapsed for _, elapsed in answers[1:]) < 1.0
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"]["ok"] is False
        assert ready.headers["Retry-After"] == "1"

        await asyncio.to_thread(own_kafka.wait_ready, 120)
        await wait_ready(client, timeout_s=90)  # the same app: no restart
        for events in during:
            retried = await post_until(client, events, timeout_s=60)
            assert [a["id"] for a in retried.json()["accepted"]] == [e["id"] for e in events]
        again = await client.post("/v1/events/batch", json=before)
        assert again.content == acknowledged.content

    ids = ids_in(await read_topic(bootstrap, TOPIC))
    expected = [e["id"] for e in before] + [e["id"] for batch in during for e in batch]
    assert sorted(ids) == sorted(expected)  # every event once: none lost, none twice
