"""Ingest on three Kafka nodes and a Redis Cluster: its idempotency records are spread over
every master (one key per identity, each on its own slot), and a request's claims, its
completion and its look-ups still act as one: a resubmission gets the same answer and
appends nothing, the same identity with other content gets 409, concurrent requests with the
same events append them once, and a retraction finds its target's partition."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import RedisCluster as RedisClusterClient
from redis.crc import key_slot

from chancery import keyspace
from chancery.contract import event_key
from services.cli.local import KafkaCluster, RedisCluster
from services.ingest.app import create_app
from tests.unit.ingest.support import SOURCE, make_event, retraction, running

from .test_ingest import ids_in, ingest_settings, read_topic, wait_ready, writer_key

pytestmark = pytest.mark.integration


@pytest.fixture
async def ingest(
    whole_kafka_cluster: KafkaCluster,
    kafka_cluster_topic: str,
    redis_cluster_url: str,
    tmp_path: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    keys_file, key = writer_key(tmp_path)
    settings = ingest_settings(
        whole_kafka_cluster.bootstrap_servers,
        kafka_cluster_topic,
        redis_cluster_url,
        keys_file,
        redis_cluster=True,
        replication_factor=3,
        min_insync_replicas=2,
    )
    async with running(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        await wait_ready(client)
        yield client


async def test_resubmissions_and_conflicts_are_found_on_every_master(
    ingest: httpx.AsyncClient,
    whole_kafka_cluster: KafkaCluster,
    kafka_cluster_topic: str,
    redis_cluster: RedisCluster,
) -> None:
    events = [make_event(id_=f"dup-{i}") for i in range(50)]
    first = await ingest.post("/v1/events/batch", json=events)
    again = await ingest.post("/v1/events/batch", json=events)
    one = await ingest.post("/v1/events", json=events[17])
    conflicts = [
        await ingest.post("/v1/events", json={**events[i], "time": "2023-05-28T08:00:00Z"})
        for i in (0, 21, 49)
    ]

    assert first.status_code == again.status_code == one.status_code == 202, first.text
    assert again.content == first.content
    assert one.json()["accepted"] == [first.json()["accepted"][17]]
    assert [c.status_code for c in conflicts] == [409, 409, 409]
    records = await read_topic(whole_kafka_cluster.bootstrap_servers, kafka_cluster_topic)
    assert sorted(ids_in(records)) == sorted(e["id"] for e in events)
    # The records are spread over every master: one batch's claims went to all three.
    keys = [keyspace.idempotency(event_key(SOURCE, e["id"])) for e in events]
    view = await redis_cluster.view()
    assert len({view.master_of_slot(key_slot(k.encode())) for k in keys}) == 3


async def test_concurrent_requests_with_the_same_events_append_them_once(
    ingest: httpx.AsyncClient, whole_kafka_cluster: KafkaCluster, kafka_cluster_topic: str
) -> None:
    events = [make_event(id_=f"race-{i}") for i in range(30)]

    answers = await asyncio.gather(
        *(ingest.post("/v1/events/batch", json=events) for _ in range(6))
    )

    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    records = await read_topic(whole_kafka_cluster.bootstrap_servers, kafka_cluster_topic)
    assert sorted(ids_in(records)) == sorted(e["id"] for e in events)


async def test_a_retraction_lands_in_the_partition_of_its_target(
    ingest: httpx.AsyncClient,
    whole_kafka_cluster: KafkaCluster,
    kafka_cluster_topic: str,
    redis_cluster_url: str,
) -> None:
    targets = [
        make_event("diplomacy.meeting.held", "t-meeting"),
        make_event("diplomacy.visit.announced", "t-visit"),
        make_event("diplomacy.stance.declared", "t-stance"),
    ]
    assert (await ingest.post("/v1/events/batch", json=targets)).status_code == 202
    answer = await ingest.post(
        "/v1/events/batch", json=[retraction(f"x-{t['id']}", t["id"]) for t in targets]
    )

    assert answer.status_code == 202, answer.text
    records = await read_topic(whole_kafka_cluster.bootstrap_servers, kafka_cluster_topic)
    assert len(records) == 6
    # The targets' records (one MGET per slot), where ingest found their partition keys.
    client = RedisClusterClient.from_url(redis_cluster_url)
    try:
        stored = await client.mget_nonatomic(
            [keyspace.idempotency(event_key(SOURCE, t["id"])) for t in targets]
        )
    finally:
        await client.aclose()
    assert all(record is not None for record in stored)
    where = {i: (p, k) for i, (p, _, k, _) in zip(ids_in(records), records, strict=True)}
    for t in targets:
        assert where[f"x-{t['id']}"] == where[t["id"]]
