"""The servers under the suite are real: what goes in comes back out through another client."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

from services.cli.local import KafkaServer, RedisServer

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    """Every record of the topic, read by a fresh consumer with no group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[tuple[bytes, bytes]] = []
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            records += [(r.key, r.value) for rs in batch.values() for r in rs]
            if len(records) >= expected:
                break
        return records
    finally:
        await consumer.stop()


async def test_topic_round_trip_through_a_separate_consumer(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    records = [(f"k{i % 3}".encode(), f"v{i}".encode()) for i in range(30)]
    await _produce(kafka_bootstrap, kafka_topic, records)

    read = await _read_all(kafka_bootstrap, kafka_topic, len(records))

    assert sorted(read) == sorted(records)


async def test_topic_fixture_makes_six_partitions_kept_forever(
    kafka_bootstrap: str, kafka_topic: str, kafka_dead_letter_topic: str
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topics = await admin.describe_topics([kafka_topic, kafka_dead_letter_topic])
        described = {t["topic"]: t for t in topics}
    finally:
        await admin.close()
    assert len(described[kafka_topic]["partitions"]) == 6
    assert len(described[kafka_dead_letter_topic]["partitions"]) == 1


async def test_the_broker_refuses_unknown_topics(kafka_bootstrap: str) -> None:
    """auto.create.topics.enable=false: a typo in a topic name fails instead of creating it."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=1500)
    await producer.start()
    try:
        with pytest.raises((KafkaTimeoutError, UnknownTopicOrPartitionError)):
            await producer.send_and_wait(f"test.no-such-topic-{uuid.uuid4().hex}", b"x")
    finally:
        await producer.stop()


async def test_redis_write_read_and_isolated_databases(redis_db_url: str, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_db_url)
    other = aioredis.Redis.from_url(redis_url)
    try:
        await client.set("chancery:test:key", "value")
        assert await client.get("chancery:test:key") == b"value"
        assert await other.get("chancery:test:key") is None
        info = await client.info("server")
        assert str(info["redis_version"]).startswith("7.")
    finally:
        await client.aclose()
        await other.aclose()


async def test_each_test_gets_an_empty_database(redis_db_url: str) -> None:
    client = aioredis.Redis.from_url(redis_db_url)
    try:
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


async def test_broker_restart_keeps_the_log(local_kafka: KafkaServer, kafka_topic: str) -> None:
    bootstrap = local_kafka.bootstrap_servers
    records = [(b"USA|CHN", f"before-restart-{i}".encode()) for i in range(10)]
    await _produce(bootstrap, kafka_topic, records)
    pid_before = local_kafka.pid

    local_kafka.stop()
    assert not local_kafka.is_running()
    local_kafka.start()
    local_kafka.wait_ready()

    assert local_kafka.pid not in (None, pid_before)
    assert sorted(await _read_all(bootstrap, kafka_topic, len(records))) == sorted(records)


async def test_redis_killed_comes_back_empty(local_redis: RedisServer, redis_db_url: str) -> None:
    """The test Redis keeps nothing on disk: a kill and a start lose everything."""
    client = aioredis.Redis.from_url(redis_db_url)
    try:
        await client.set("chancery:test:survives", "no")
    finally:
        await client.aclose()

    local_redis.kill()
    assert not local_redis.is_running()
    local_redis.start()
    local_redis.wait_ready()

    client = aioredis.Redis.from_url(redis_db_url)
    try:
        assert await client.get("chancery:test:survives") is None
    finally:
        await client.aclose()
