"""Ingest against the real Kafka and Redis: what the API says is what the topic holds.

Every claim about the log is checked by reading the topic back with a separate consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from chancery import keyspace
from chancery.auth import KeyRing, Scope, new_api_key, utcnow
from chancery.contract import decode_event, event_key
from chancery.keyspace import IdempotencyRecord, PartitionSpace
from chancery.positions import Position
from chancery.settings import IngestSettings
from services.cli.local import free_ports
from services.ingest.app import create_app
from services.ingest.routes import APPENDED_HEADER
from tests.servers import TOPIC_PARTITIONS
from tests.unit.ingest.support import SOURCE, make_event, retraction, running

pytestmark = pytest.mark.integration


async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, int, bytes, bytes]]:
    """Every record of the topic as (partition, offset, key, value), up to its end now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, int, bytes, bytes]] = []
        async with asyncio.timeout(30):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=200)
                out += [
                    (r.partition, r.offset, r.key, r.value) for rs in batch.values() for r in rs
                ]
        return out
    finally:
        await consumer.stop()


def ingest_settings(
    bootstrap: str, topic: str, redis_url: str, keys_file: Path, **more: Any
) -> IngestSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "topic": topic,
        "redis_url": redis_url,
        "api_keys_file": keys_file,
        "jwt_secret": None,
        "max_batch_events": 50,
        "max_body_bytes": 64 * 1024,
        "publish_timeout_s": 5.0,
        **more,
    }
    return IngestSettings(**values)


def writer_key(tmp_path: Path) -> tuple[Path, str]:
    keys_file = tmp_path / "api-keys.json"
    key, record = new_api_key("test-writer", [Scope.EVENTS_WRITE], now=utcnow())
    ring = KeyRing([record])
    ring.save(keys_file)
    return keys_file, key


async def wait_ready(client: httpx.AsyncClient, timeout_s: float = 60) -> None:
    """Poll /readyz (an HTTP probe, as an orchestrator would) until it answers 200."""
    async with asyncio.timeout(timeout_s):
        while True:
            if (await client.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)


@pytest.fixture
async def ingest(
    kafka_bootstrap: str, kafka_topic: str, redis_db_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    keys_file, key = writer_key(tmp_path)
    app = create_app(ingest_settings(kafka_bootstrap, kafka_topic, redis_db_url, keys_file))
    async with running(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        await wait_ready(client)
        yield client


def ids_in(records: list[tuple[int, int, bytes, bytes]]) -> list[str]:
    return [decode_event(value).id for _, _, _, value in records]


@pytest.mark.parametrize("bad_index", [0, 7, 19])
async def test_a_batch_is_all_or_nothing_in_the_topic(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str, bad_index: int
) -> None:
    events = [make_event(id_=f"aon-{i}") for i in range(20)]
    events[bad_index]["data"]["cameo"] = "999"

    refused = await ingest.post("/v1/events/batch", json=events)

    assert refused.status_code == 422
    assert [(e["index"], e["field"]) for e in refused.json()["errors"]] == [
        (bad_index, "data.cameo")
    ]
    assert await read_topic(kafka_bootstrap, kafka_topic) == []

    events[bad_index]["data"]["cameo"] = "042"
    accepted = await ingest.post("/v1/events/batch", json=events)

    assert accepted.status_code == 202, accepted.text
    records = await read_topic(kafka_bootstrap, kafka_topic)
    assert sorted(ids_in(records)) == sorted(e["id"] for e in events)
    where = {decode_event(v).id: (p, o) for p, o, _, v in records}
    for item in accepted.json()["accepted"]:
        ((partition, offset),) = Position.parse(item["position"]).offsets.items()
        assert where[item["id"]] == (partition, offset)


async def test_records_carry_the_key_and_the_content_type_header(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str
) -> None:
    assert (await ingest.post("/v1/events", json=make_event(id_="hdr"))).status_code == 202
    consumer = AIOKafkaConsumer(
        kafka_topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.key == b"CHN|RUS"
    assert ("content-type", b"application/cloudevents+json") in list(record.headers)


async def test_a_duplicate_is_not_appended_and_gets_the_same_answer(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str
) -> None:
    events = [make_event(id_=f"dup-{i}") for i in range(5)]
    first = await ingest.post("/v1/events/batch", json=events)
    again = await ingest.post("/v1/events/batch", json=events)
    one = await ingest.post("/v1/events", json=events[2])
    conflict = await ingest.post("/v1/events", json={**events[0], "time": "2023-05-28T08:00:00Z"})

    assert first.status_code == again.status_code == one.status_code == 202
    assert again.content == first.content
    assert one.json()["accepted"] == [first.json()["accepted"][2]]
    assert conflict.status_code == 409
    assert "dup-0" in conflict.text
    assert sorted(ids_in(await read_topic(kafka_bootstrap, kafka_topic))) == sorted(
        e["id"] for e in events
    )


async def test_concurrent_requests_with_the_same_events_append_them_once(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str
) -> None:
    events = [make_event(id_=f"race-{i}") for i in range(10)]

    answers = await asyncio.gather(
        *(ingest.post("/v1/events/batch", json=events) for _ in range(6))
    )

    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert sorted(ids_in(await read_topic(kafka_bootstrap, kafka_topic))) == sorted(
        e["id"] for e in events
    )


async def test_a_retraction_lands_in_the_partition_of_its_target(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str
) -> None:
    targets = [
        make_event("diplomacy.meeting.held", "t-meeting"),
        make_event("diplomacy.visit.announced", "t-visit"),
        make_event("diplomacy.stance.declared", "t-stance"),
    ]
    assert (await ingest.post("/v1/events/batch", json=targets)).status_code == 202
    retractions = [retraction(f"x-{t['id']}", t["id"]) for t in targets]

    answer = await ingest.post("/v1/events/batch", json=retractions)
    unknown = await ingest.post("/v1/events", json=retraction("x-none", "no-such-event"))

    assert answer.status_code == 202, answer.text
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "data.target"
    records = await read_topic(kafka_bootstrap, kafka_topic)
    placed = {decode_event(v).id: (p, k) for p, _, k, v in records}
    assert "x-none" not in placed
    for t in targets:
        assert placed[f"x-{t['id']}"] == placed[t["id"]]


async def test_a_retraction_of_a_target_ingest_forgot_goes_where_the_read_models_say(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str, redis_db_url: str
) -> None:
    target = make_event("diplomacy.visit.announced", "t-old")
    assert (await ingest.post("/v1/events", json=target)).status_code == 202
    ((partition, offset, key, value),) = await read_topic(kafka_bootstrap, kafka_topic)
    target_key = event_key(SOURCE, "t-old")
    redis = Redis.from_url(redis_db_url)
    try:
        # The projector's record of the target, in the version the API serves; then the
        # idempotency window passes (ingest's own memory of the target expires).
        version = 3
        await redis.set(keyspace.ACTIVE_VERSION, version)
        await redis.hset(
            keyspace.version_meta(version),
            mapping={"partitions": TOPIC_PARTITIONS, "layout": keyspace.LAYOUT},
        )
        space = PartitionSpace(version, partition)
        await redis.hset(space.events, str(offset), keyspace.encode_stored_event(value))
        await redis.hset(space.event_ids, "t-old", str(offset))
        await redis.delete(keyspace.idempotency(target_key))

        answer = await ingest.post("/v1/events", json=retraction("x-old", "t-old"))
        await redis.delete(keyspace.ACTIVE_VERSION)
        no_read_models = await ingest.post("/v1/events", json=retraction("x-old-2", "t-old"))
    finally:
        await redis.aclose()

    assert answer.status_code == 202, answer.text
    assert no_read_models.status_code == 422
    records = await read_topic(kafka_bootstrap, kafka_topic)
    placed = {decode_event(v).id: (p, k) for p, _, k, v in records}
    assert placed == {"t-old": (partition, key), "x-old": (partition, key)}
    assert key == b"li-hui"


async def test_records_an_earlier_ingest_stored_as_json_still_answer(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str, redis_db_url: str
) -> None:
    """After an upgrade, the records the previous version wrote (JSON) live one idempotency
    window: a resubmission still gets its first answer, a retraction still finds its target."""
    target = make_event("diplomacy.visit.announced", "legacy-1")
    first = await ingest.post("/v1/events", json=target)
    key = keyspace.idempotency(event_key(SOURCE, "legacy-1"))
    redis = Redis.from_url(redis_db_url)
    try:
        stored = await redis.get(key)
        assert isinstance(stored, bytes)
        assert stored.startswith(b"D")  # this version writes lines
        record = IdempotencyRecord.decode(stored)
        legacy = {
            "digest": record.digest,
            "partition_key": record.partition_key,
            "state": "done",
            "partition": record.partition,
            "offset": record.offset,
        }
        await redis.set(key, json.dumps(legacy, separators=(",", ":")))
        again = await ingest.post("/v1/events", json=target)
        retracted = await ingest.post("/v1/events", json=retraction("legacy-x", "legacy-1"))
    finally:
        await redis.aclose()

    assert first.status_code == again.status_code == retracted.status_code == 202
    assert again.json() == first.json()
    assert again.headers[APPENDED_HEADER] == "0"
    records = await read_topic(kafka_bootstrap, kafka_topic)
    assert [(decode_event(v).id, p) for p, _, _, v in records] == [
        ("legacy-1", record.partition),
        ("legacy-x", record.partition),
    ]


async def test_bad_requests_get_their_status_and_append_nothing(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str
) -> None:
    big = [make_event(id_=f"big-{i}") for i in range(50)]
    for event in big:
        event["data"]["source_url"] = "https://news.example/" + "x" * 2000
    checks = {
        413: await ingest.post("/v1/events/batch", json=big),
        415: await ingest.post("/v1/events", content=b"{}", headers={"content-type": "text/csv"}),
        400: await ingest.post(
            "/v1/events", content=b'{"id":', headers={"content-type": "application/json"}
        ),
        422: await ingest.post("/v1/events", json={**make_event(), "time": "not a time"}),
        401: await ingest.post("/v1/events", json=make_event(), headers={"Authorization": ""}),
    }
    too_many = await ingest.post(
        "/v1/events/batch", json=[make_event(id_=f"m-{i}") for i in range(51)]
    )

    for status, response in checks.items():
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]
    assert too_many.status_code == 422
    assert "at most 50" in too_many.json()["detail"]
    assert await read_topic(kafka_bootstrap, kafka_topic) == []


async def test_worker_processes_share_claims_and_sum_their_metrics(
    chancery_env: dict[str, str], kafka_bootstrap: str, kafka_topic: str, tmp_path: Path
) -> None:
    """`python -m services.ingest` with two workers: the same batch sent on many connections
    at once (so to both workers) is appended once, every client gets the same answer, the
    metrics of either worker count both, and SIGTERM stops it all."""
    keys_file, key = writer_key(tmp_path)
    (port,) = free_ports(1)
    env = {
        **os.environ,
        **chancery_env,
        "CHANCERY_API_KEYS_FILE": str(keys_file),
        "CHANCERY_INGEST_PORT": str(port),
        "CHANCERY_INGEST_WORKERS": "2",
        "CHANCERY_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ingest",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    events = [make_event(id_=f"workers-{i}") for i in range(10)]
    try:
        async with asyncio.timeout(90):
            ready = 0
            while ready < 6:  # several new connections in a row: both workers are up
                try:
                    async with httpx.AsyncClient(base_url=base) as probe:
                        ok = (await probe.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    ok = False
                ready = ready + 1 if ok else 0
                await asyncio.sleep(0.2)

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(base_url=base, headers=headers) as client:
                return await client.post("/v1/events/batch", json=events)

        answers = await asyncio.gather(*(send() for _ in range(12)))
        async with httpx.AsyncClient(base_url=base) as client:
            scrapes = [(await client.get("/metrics")).text for _ in range(4)]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    stderr = err.decode(errors="replace")

    assert {a.status_code for a in answers} == {202}, stderr[-2000:]
    assert len({a.content for a in answers}) == 1
    records = await read_topic(kafka_bootstrap, kafka_topic)
    assert sorted(ids_in(records)) == sorted(e["id"] for e in events)
    appended = 'chancery_ingest_events_accepted_total{outcome="appended"} 10.0'
    duplicates = 'chancery_ingest_events_accepted_total{outcome="duplicate"} 110.0'
    for text in scrapes:
        assert appended in text, text
        assert duplicates in text
    assert process.returncode == 0, stderr[-2000:]
