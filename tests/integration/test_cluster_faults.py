"""The projector on three Kafka nodes and a Redis Cluster, under the faults a cluster is for.

- A Redis master is SIGKILLed while the projector replays a log; its replica is promoted.
  The same projector process goes on by itself, and its read models end equal, key by key,
  to a clean replay's of the same log on a single Redis: nothing lost, nothing applied
  twice, although replication is asynchronous (a promoted replica that lacks a step's writes
  lacks its offset too; the fence makes the projector apply it again: README, Guarantees).
- Two projector processes share the partitions; one is SIGKILLed while it has records to
  apply; the other takes its partitions over; the read models end equal to a clean replay's.
- A rebuild on the cluster fills a new version, moves the pointer and drops the old
  version's keys from every master.

Every wait is bounded and says what it waited for; nothing asserts how fast.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from redis.asyncio import RedisCluster as RedisClusterClient
from redis.crc import key_slot

from chancery.keyspace import PartitionSpace, version_prefix
from services.cli.local import KafkaCluster, RedisCluster
from services.platform.redis import REDIS_UNAVAILABLE
from services.projector.app import run_rebuild
from tests.servers import _Databases

from .projector_helpers import (
    ProjectorProcess,
    active_version,
    canonical_dump,
    day_count,
    diff_dumps,
    effects_count,
    end_offsets,
    generate_log,
    publish,
    redis_of,
    wait_until_applied,
)
from .sigkill_replay import applied, clean_replay
from .test_projector_domain import projector_settings

pytestmark = pytest.mark.integration

PARTITIONS = 6
T = TypeVar("T")


def cluster_env(kafka: KafkaCluster, topic: str, redis_url: str) -> dict[str, str]:
    """The CHANCERY_* variables of a service on the clusters."""
    return {
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CHANCERY_TOPIC": topic,
        "CHANCERY_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "CHANCERY_REDIS_URL": redis_url,
        "CHANCERY_REDIS_CLUSTER": "true",
        "CHANCERY_REPLICATION_FACTOR": "3",
        "CHANCERY_MIN_INSYNC_REPLICAS": "2",
    }


@pytest.fixture
def reference_db_url(_redis_databases: _Databases) -> str:
    """An empty database on the session's single Redis, for the clean replay."""
    return _redis_databases.take()


@pytest.fixture
async def cluster_redis(redis_cluster_url: str) -> AsyncIterator[RedisClusterClient]:
    client = redis_of({"CHANCERY_REDIS_URL": redis_cluster_url, "CHANCERY_REDIS_CLUSTER": "true"})
    assert isinstance(client, RedisClusterClient)
    yield client
    await client.aclose()


async def retrying(call: Callable[[], Awaitable[T]], timeout_s: float = 60) -> T:
    """`call()`, again while the cluster cannot answer (the test's own client, mid-failover)."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                return await call()
            except REDIS_UNAVAILABLE:
                await asyncio.sleep(0.2)


@pytest.mark.timeout(600)
async def test_a_redis_master_killed_mid_replay_changes_nothing_in_the_end(
    whole_kafka_cluster: KafkaCluster,
    kafka_cluster_topic: str,
    whole_redis_cluster: RedisCluster,
    redis_cluster_url: str,
    cluster_redis: RedisClusterClient,
    reference_db_url: str,
    tmp_path: Path,
) -> None:
    bootstrap, topic = whole_kafka_cluster.bootstrap_servers, kafka_cluster_topic
    env = cluster_env(whole_kafka_cluster, topic, redis_cluster_url)
    log = generate_log(15_000, seed=13)
    await publish(bootstrap, topic, log)
    ends = await end_offsets(bootstrap, topic)
    total = sum(ends.values())
    projector = ProjectorProcess(env, tmp_path / "projector.log")
    projector.start(CHANCERY_PROJECTOR_BATCH_EVENTS="200", CHANCERY_GROUP_ID=f"g-{topic}")
    try:
        async with asyncio.timeout(120):
            while (before_kill := await applied(cluster_redis, PARTITIONS)) < total // 10:
                assert projector.alive(), projector.log()[-2000:]
                await asyncio.sleep(0.01)
        version = await active_version(cluster_redis)
        assert version is not None
        offset_key = PartitionSpace(version, 0).offset
        victim = await whole_redis_cluster.master_of_key(offset_key)
        whole_redis_cluster.kill_node(victim)
        await whole_redis_cluster.wait_for_master(key_slot(offset_key.encode()), not_node=victim)

        done = await retrying(
            lambda: wait_until_applied(cluster_redis, ends, timeout_s=300), timeout_s=360
        )
        assert done == version
        assert projector.alive(), "the projector stopped instead of going on"
        dump = await retrying(lambda: canonical_dump(cluster_redis, version))
        assert projector.stop() == 0, projector.log()[-3000:]
    finally:
        projector.kill()
    _, clean = await clean_replay(env, reference_db_url)

    assert before_kill < total // 2, "the master was killed after the replay, not during it"
    assert "Redis unavailable" in projector.log(), "the projector never met the failover"
    assert diff_dumps(dump, clean) == []
    assert day_count(dump) == effects_count([p.event for p in log])
    assert "Traceback" not in projector.log()


@pytest.mark.timeout(600)
async def test_two_projectors_share_the_partitions_and_one_takes_over_from_the_other(
    whole_kafka_cluster: KafkaCluster,
    kafka_cluster_topic: str,
    redis_cluster_url: str,
    cluster_redis: RedisClusterClient,
    reference_db_url: str,
    tmp_path: Path,
) -> None:
    bootstrap, topic = whole_kafka_cluster.bootstrap_servers, kafka_cluster_topic
    env = cluster_env(whole_kafka_cluster, topic, redis_cluster_url)
    log = generate_log(30_000, seed=17)
    thirds = [
        log[: len(log) // 3],
        log[len(log) // 3 : 2 * len(log) // 3],
        log[2 * len(log) // 3 :],
    ]
    await publish(bootstrap, topic, thirds[0])
    group = f"two-{uuid.uuid4().hex[:8]}"
    first = ProjectorProcess(env, tmp_path / "first.log", CHANCERY_PROJECTOR_BATCH_EVENTS="200")
    second = ProjectorProcess(env, tmp_path / "second.log", CHANCERY_PROJECTOR_BATCH_EVENTS="200")
    first.start(CHANCERY_GROUP_ID=group)
    second.start(CHANCERY_GROUP_ID=group)
    try:
        shares = await _until_owned(
            lambda s: all(s) and sorted(s[0] + s[1]) == list(range(PARTITIONS)), first, second
        )
        killed, survivor = (first, second) if len(shares[0]) >= len(shares[1]) else (second, first)

        await publish(bootstrap, topic, thirds[1])  # records for both, then one dies
        killed.kill()
        await publish(bootstrap, topic, thirds[2])
        # The group gives the dead member's partitions to the other after its session ends.
        await _until_owned(lambda s: sorted(s[0]) == list(range(PARTITIONS)), survivor)
        ends = await end_offsets(bootstrap, topic)
        version = await wait_until_applied(cluster_redis, ends, timeout_s=300)
        dump = await canonical_dump(cluster_redis, version)
        assert survivor.stop() == 0, survivor.log()[-3000:]
    finally:
        first.kill()
        second.kill()
    _, clean = await clean_replay(env, reference_db_url)

    assert diff_dumps(dump, clean) == []
    assert day_count(dump) == effects_count([p.event for p in log])
    assert "Traceback" not in survivor.log()


async def test_a_rebuild_on_the_cluster_replaces_the_version_on_every_master(
    whole_kafka_cluster: KafkaCluster,
    kafka_cluster_topic: str,
    redis_cluster_url: str,
    cluster_redis: RedisClusterClient,
    reference_db_url: str,
) -> None:
    bootstrap, topic = whole_kafka_cluster.bootstrap_servers, kafka_cluster_topic
    env = cluster_env(whole_kafka_cluster, topic, redis_cluster_url)
    await publish(bootstrap, topic, generate_log(3000, seed=21))
    settings = projector_settings(env, replication_factor=3, min_insync_replicas=2)

    first, none = await run_rebuild(settings)
    second, replaced = await run_rebuild(settings, grace_s=0)

    assert (none, replaced, second) == (None, first, first + 1)
    assert await active_version(cluster_redis) == second
    left = [k async for k in cluster_redis.scan_iter(match=version_prefix(first) + "*")]
    assert left == []
    _, clean = await clean_replay(env, reference_db_url)
    assert diff_dumps(await canonical_dump(cluster_redis, second), clean) == []


async def _until_owned(
    done: Callable[[list[list[int]]], bool], *projectors: ProjectorProcess, timeout_s: float = 120
) -> list[list[int]]:
    """Until the partitions each projector owns (its status) satisfy `done`; returns them."""
    shares: list[list[int]] = []
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                for projector in projectors:
                    assert projector.alive(), projector.log()[-2000:]
                shares = [await projector.owned() for projector in projectors]
                if done(shares):
                    return shares
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(
            f"waited {timeout_s}s for the partitions; last seen: {shares}"
        ) from None
