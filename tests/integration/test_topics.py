"""The topic rules against a real broker: what is created, what is accepted, what is refused.

An existing log is used with whatever partition count it has unless a count is configured;
a configured count that differs, too few replicas or a lower min.insync.replicas fail at
start, naming both sides (the rules themselves: tests/unit/cli/test_topic_rules.py).
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from services.cli.local import (
    TopicMismatchError,
    TopicSpec,
    chancery_topics,
    check_topics,
    ensure_topics,
)

pytestmark = pytest.mark.integration

TOPIC_CONFIG = 1


def fresh_name() -> str:
    return f"test.topics-{uuid.uuid4().hex[:12]}"


async def describe(bootstrap: str, topic: str) -> tuple[int, int, dict[str, str]]:
    """(partitions, replicas of partition 0, the topic's own configs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    (resource,) = response.to_object()["resources"]
    # config_source 1: set on the topic itself (DescribeConfigs v1+), not a broker default.
    own = {
        e["config_names"]: e["config_value"]
        for e in resource["config_entries"]
        if e["config_source"] == TOPIC_CONFIG
    }
    partitions = described["partitions"]
    return len(partitions), len(partitions[0]["replicas"]), own


async def test_a_new_log_gets_the_configured_count_and_its_durability_settings(
    kafka_bootstrap: str,
) -> None:
    name = fresh_name()

    created = await ensure_topics(kafka_bootstrap, chancery_topics(name, f"{name}.dlq", 4))

    assert sorted(created) == sorted([name, f"{name}.dlq"])
    partitions, replicas, configs = await describe(kafka_bootstrap, name)
    assert (partitions, replicas) == (4, 1)
    assert configs["min.insync.replicas"] == "1"
    assert configs["retention.ms"] == "-1"
    assert (await describe(kafka_bootstrap, f"{name}.dlq"))[0] == 1


async def test_without_a_configured_count_a_new_log_gets_six(kafka_bootstrap: str) -> None:
    name = fresh_name()
    await ensure_topics(kafka_bootstrap, chancery_topics(name, f"{name}.dlq"))
    assert (await describe(kafka_bootstrap, name))[0] == 6


async def test_an_existing_log_is_used_with_its_count_when_none_is_configured(
    kafka_bootstrap: str,
) -> None:
    name = fresh_name()
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, 3, {"retention.ms": "-1"})])

    created = await ensure_topics(kafka_bootstrap, chancery_topics(name, f"{name}.dlq"))

    assert created == [f"{name}.dlq"]
    assert (await describe(kafka_bootstrap, name))[0] == 3
    await check_topics(kafka_bootstrap, chancery_topics(name, f"{name}.dlq"))


async def test_a_configured_count_that_differs_from_the_logs_fails_naming_both(
    kafka_bootstrap: str,
) -> None:
    name = fresh_name()
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, 3, {"retention.ms": "-1"})])

    with pytest.raises(TopicMismatchError, match="has 3 partitions, but 6 are configured"):
        await ensure_topics(kafka_bootstrap, chancery_topics(name, f"{name}.dlq", 6))
    with pytest.raises(TopicMismatchError, match="has 3 partitions, but 6 are configured"):
        await check_topics(kafka_bootstrap, chancery_topics(name, f"{name}.dlq", 6))


async def test_a_log_with_fewer_replicas_and_in_sync_replicas_than_required_is_refused(
    kafka_bootstrap: str,
) -> None:
    name = fresh_name()
    await ensure_topics(kafka_bootstrap, chancery_topics(name, f"{name}.dlq"))
    required = chancery_topics(name, f"{name}.dlq", replication_factor=3, min_insync_replicas=2)

    with pytest.raises(TopicMismatchError) as refused:
        await check_topics(kafka_bootstrap, required)

    message = str(refused.value)
    assert f"topic {name} has 1 replica(s) per partition, fewer than the 3 required" in message
    assert f"topic {name} has min.insync.replicas=1, fewer in-sync replicas than the 2" in message


async def test_three_replicas_cannot_be_had_from_one_broker(kafka_bootstrap: str) -> None:
    name = fresh_name()
    with pytest.raises(KafkaError, match=name):
        await ensure_topics(
            kafka_bootstrap,
            chancery_topics(name, f"{name}.dlq", replication_factor=3, min_insync_replicas=2),
            timeout_s=10,
        )


async def test_checking_creates_nothing_and_names_what_is_missing(kafka_bootstrap: str) -> None:
    name = fresh_name()
    with pytest.raises(TopicMismatchError, match="missing"):
        await check_topics(kafka_bootstrap, chancery_topics(name, f"{name}.dlq"), timeout_s=5)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert name not in await admin.list_topics()
    finally:
        await admin.close()
