"""The event log is readable by any Kafka client, not only ours: a consumer written with
confluent-kafka (librdkafka, no aiokafka, no Chancery code on the reading side) reads the
topic ingest wrote, zstd-compressed as ingest writes it, and every record decodes: by the
official CloudEvents SDK's Kafka binding (structured mode, from the record's content-type
header) and by the contract (`decode_event`).

The events are every type of the catalogue (the golden files), the article, and a thousand
coded events, posted through ingest (its real producer) into a fresh topic. That the log is
compressed is checked on the record batches the broker serves (a raw Fetch), so the test
cannot pass on an uncompressed log by accident.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords
from cloudevents.core.bindings import kafka as ce_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError
from confluent_kafka import TopicPartition as ConfluentPartition

from chancery.contract import decode_event, partition_for
from services.ingest.app import create_app
from tests.integration.test_ingest import ingest_settings, wait_ready, writer_key
from tests.servers import TOPIC_PARTITIONS
from tests.unit.ingest.support import running

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[2] / "chancery" / "contract" / "golden"
SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "article.jsonl"
STAMPED = ("recordedtime", "partitionkey")  # ingest sets these; a client may not
BATCH_TYPE = "application/cloudevents-batch+json"
CODED = 1000


def client_events() -> list[dict[str, Any]]:
    """Every type once (the golden files, as a client sends them), the article, and coded
    events between many pairs."""
    golden = [json.loads(p.read_text()) for p in sorted(GOLDEN.glob("*.json"))]
    events = [{k: v for k, v in e.items() if k not in STAMPED} for e in golden]
    # A retraction goes after the event it retracts.
    events.sort(key=lambda e: e["type"] == "diplomacy.event.retracted")
    events += [json.loads(line) for line in SEEDS.read_text().splitlines() if line]
    coded = next(e for e in events if e["type"] == "diplomacy.event.coded")
    states = ["CHN", "USA", "RUS", "UKR", "IRN", "SAU", "DEU", "FRA", "IND", "BRA", "JPN"]
    for i in range(CODED):
        a, b = states[i % len(states)], states[(i * 7 + 3) % len(states)]
        if a == b:
            b = "GBR"
        data = {**coded["data"], "actor1": a, "actor2": b, "mentions": i + 1}
        events.append({**coded, "id": f"coded-{i:05d}", "data": data})
    return events


@pytest.fixture
async def ingest(
    kafka_bootstrap: str, kafka_topic: str, redis_db_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    keys_file, key = writer_key(tmp_path)
    settings = ingest_settings(
        kafka_bootstrap,
        kafka_topic,
        redis_db_url,
        keys_file,
        max_batch_events=1000,
        max_body_bytes=4 * 1024 * 1024,
    )
    async with running(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        await wait_ready(client)
        yield client


def consume_with_librdkafka(bootstrap: str, topic: str) -> list[Any]:
    """Every record of the topic, read by confluent-kafka from the beginning to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"confluent-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign(
            [ConfluentPartition(topic, p, OFFSET_BEGINNING) for p in range(TOPIC_PARTITIONS)]
        )
        records: list[Any] = []
        at_end: set[int] = set()
        for _ in range(10_000):  # bounded: each poll waits at most 0.5 s
            message = consumer.poll(0.5)
            if message is None:
                continue
            partition = message.partition()
            assert partition is not None
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(partition)
                if len(at_end) == TOPIC_PARTITIONS:
                    return records
                continue
            at_end.discard(partition)
            records.append(message)
        raise AssertionError(f"the topic's end was not reached: {len(records)} records read")
    finally:
        consumer.close()


async def codecs_of_the_log(bootstrap: str, topic: str) -> list[int]:
    """The compression codec of every record batch the broker serves for the topic (a raw
    Fetch from offset 0 of each partition, the bytes as stored)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
        codecs: list[int] = []
        for partition in range(TOPIC_PARTITIONS):
            leader = cluster.leader_for_partition(TopicPartition(topic, partition))
            assert leader is not None
            request = FetchRequest(
                max_wait_time=100,
                min_bytes=1,
                max_bytes=64 * 1024 * 1024,
                isolation_level=0,
                topics=[(topic, [(partition, 0, 64 * 1024 * 1024)])],
            )
            response = await client.send(leader, request)
            for _, partitions in response.topics:
                for answer in partitions:
                    records = MemoryRecords(answer[-1])
                    while (batch := records.next_batch()) is not None:
                        codecs.append(batch.compression_type)
        return codecs
    finally:
        await client.close()


async def test_a_confluent_kafka_consumer_reads_and_decodes_every_event(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, kafka_topic: str
) -> None:
    sent = client_events()
    for start in range(0, len(sent), 500):
        batch = sent[start : start + 500]
        response = await ingest.post(
            "/v1/events/batch", content=json.dumps(batch), headers={"Content-Type": BATCH_TYPE}
        )
        assert response.status_code == 202, response.text

    codecs = await codecs_of_the_log(kafka_bootstrap, kafka_topic)
    assert codecs, "no record batch served"
    assert set(codecs) == {DefaultRecordBatch.CODEC_ZSTD}  # the whole log is compressed

    records = await asyncio.to_thread(consume_with_librdkafka, kafka_bootstrap, kafka_topic)
    assert len(records) == len(sent)
    types = set()
    for record in records:
        headers = dict(record.headers() or [])
        assert headers["content-type"] == b"application/cloudevents+json"
        value: bytes = record.value()
        key: bytes = record.key()
        # The CloudEvents SDK reads the record as the Kafka protocol binding says.
        sdk_event = ce_kafka.from_kafka_event(ce_kafka.KafkaMessage(headers, key, value))
        # The contract reads the same bytes into the typed event.
        event = decode_event(value)
        assert (sdk_event.get_id(), sdk_event.get_source(), sdk_event.get_type()) == (
            event.id,
            event.source,
            event.type,
        )
        assert sdk_event.get_extension("partitionkey") == event.partitionkey == key.decode()
        assert record.partition() == partition_for(key, TOPIC_PARTITIONS)
        types.add(event.type)
    assert sorted(decode_event(r.value()).id for r in records) == sorted(e["id"] for e in sent)
    assert types == {e["type"] for e in sent}  # every type of the catalogue
    assert len(types) == len(list(GOLDEN.glob("*.json")))
