"""The distributed servers under the suite are real clusters, and survive what clusters must.

Kafka: three nodes; a topic with three replicas and min.insync.replicas=2 keeps taking
acks=all writes when a partition's leader is SIGKILLed (two copies remain), every write
acknowledged is in the log once, and the killed node rejoins the ISR after a restart.
Redis: three masters and three replicas covering every slot; a master SIGKILLed is replaced
by its replica within the node timeout (and a margin), keeping what was replicated, and the
old master rejoins as a replica after a restart.

Every wait is bounded and says what it waited for; nothing asserts how fast.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as RedisClusterClient
from redis.crc import key_slot

from services.cli.local import (
    CLUSTER_MIN_INSYNC_REPLICAS,
    CLUSTER_REPLICATION_FACTOR,
    KafkaCluster,
    RedisCluster,
    TopicMismatchError,
    chancery_topics,
    check_topics,
)

pytestmark = pytest.mark.integration

# One write's bound: a leader killed without warning keeps its partitions until the
# controller fences it (broker.session.timeout.ms, 9 s), then a follower takes over.
SEND_TIMEOUT_S = 90.0


@asynccontextmanager
async def acks_all_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def send(producer: AIOKafkaProducer, topic: str, partition: int, value: bytes) -> int:
    """Write one record to `partition`; its offset once acknowledged by min.insync replicas."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            metadata = await producer.send_and_wait(topic, value, key=b"k", partition=partition)
    except TimeoutError:
        pytest.fail(f"a write to {topic}[{partition}] not acknowledged in {SEND_TIMEOUT_S}s")
    return int(metadata.offset)


async def read_partition(bootstrap: str, topic: str, partition: int, count: int) -> list[bytes]:
    """The first `count` records of one partition (fewer if it has fewer within the bound)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(values) < count and loop.time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            values += [record.value for record in batch.get(tp, []) if record.value is not None]
        return values
    finally:
        await consumer.stop()


async def topic_config(bootstrap: str, topic: str, name: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    (resource,) = response.to_object()["resources"]
    entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    return str(entries[name])


# --- Kafka ------------------------------------------------------------------------------------


async def test_a_cluster_topic_has_three_replicas_and_needs_two_in_sync(
    kafka_cluster: KafkaCluster, kafka_cluster_topic: str
) -> None:
    partitions = await kafka_cluster.describe(kafka_cluster_topic)

    assert [p.partition for p in partitions] == list(range(6))
    for p in partitions:
        assert sorted(p.replicas) == [1, 2, 3]
        assert sorted(p.isr) == [1, 2, 3]
        assert p.leader in (1, 2, 3)
    # Leadership is spread over the nodes, so killing one moves only some partitions.
    assert len({p.leader for p in partitions}) == 3
    bootstrap = kafka_cluster.bootstrap_servers
    assert await topic_config(bootstrap, kafka_cluster_topic, "min.insync.replicas") == "2"
    await check_topics(
        bootstrap,
        chancery_topics(
            kafka_cluster_topic,
            f"{kafka_cluster_topic}.dlq",
            replication_factor=CLUSTER_REPLICATION_FACTOR,
            min_insync_replicas=CLUSTER_MIN_INSYNC_REPLICAS,
        ),
    )


async def test_a_topic_with_fewer_in_sync_replicas_than_required_is_refused(
    kafka_cluster: KafkaCluster, kafka_cluster_topic: str
) -> None:
    with pytest.raises(TopicMismatchError, match=r"min.insync.replicas=2, fewer .* the 3"):
        await check_topics(
            kafka_cluster.bootstrap_servers,
            chancery_topics(
                kafka_cluster_topic,
                f"{kafka_cluster_topic}.dlq",
                replication_factor=3,
                min_insync_replicas=3,
            ),
        )


async def test_acks_all_writes_go_on_when_a_partition_leader_is_killed(
    whole_kafka_cluster: KafkaCluster, kafka_cluster_topic: str
) -> None:
    cluster, topic, partition = whole_kafka_cluster, kafka_cluster_topic, 0
    run = uuid.uuid4().hex[:8]
    acknowledged: dict[int, bytes] = {}
    async with acks_all_producer(cluster.bootstrap_servers) as producer:
        for i in range(20):
            value = f"{run}-before-{i}".encode()
            acknowledged[await send(producer, topic, partition, value)] = value
        leader = await cluster.leader_of(topic, partition)

        cluster.kill_node(leader)
        # Writes sent now wait out the fencing of the dead leader, then land on a follower
        # that was in sync: with two copies left, min.insync.replicas=2 still holds.
        for i in range(20):
            value = f"{run}-after-{i}".encode()
            acknowledged[await send(producer, topic, partition, value)] = value

        new_leader = await cluster.wait_for_leader(topic, partition, not_on=leader)
        (state,) = [p for p in await cluster.describe(topic) if p.partition == partition]
        assert leader not in state.isr
        assert len(state.isr) == 2
        assert new_leader != leader

        cluster.start_node(leader)
        await cluster.wait_for_isr(topic, size=3)
        value = f"{run}-rejoined".encode()
        acknowledged[await send(producer, topic, partition, value)] = value

    assert len(acknowledged) == 41, "two writes were given the same offset"
    log = await read_partition(cluster.bootstrap_servers, topic, partition, 41)
    # Every acknowledged write is in the log, at its offset, once; nothing else is.
    assert log == [acknowledged[offset] for offset in sorted(acknowledged)]
    assert sorted(acknowledged) == list(range(41))
    states = await cluster.describe(topic)
    assert all(leader in p.isr for p in states), "the restarted node did not rejoin every ISR"


# --- Redis ------------------------------------------------------------------------------------


@asynccontextmanager
async def cluster_client(cluster: RedisCluster) -> AsyncIterator[RedisClusterClient]:
    client = RedisClusterClient(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.startup_nodes],
        decode_responses=True,
    )
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_redis_cluster_serves_every_slot_from_three_masters(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    for number in range(1, 7):
        view = await redis_cluster.view(number)
        assert view.state == "ok"
        assert view.slots_ok == 16384
        assert view.failed == frozenset()
        assert len(view.masters) == 3
        slots = sorted(r for ranges in view.masters.values() for r in ranges)
        covered = [slot for first, last in slots for slot in range(first, last + 1)]
        assert covered == list(range(16384)), "slots missing or served twice"
        # Each master has one replica, and no node is both.
        assert sorted(view.replicas.values()) == sorted(view.masters)
        assert set(view.replicas).isdisjoint(view.masters)

    keys = [f"chancery:test:{{p{p}}}:offset" for p in range(6)]
    async with cluster_client(redis_cluster) as client:
        for i, key in enumerate(keys):
            await client.set(key, str(i))
        assert [await client.get(key) for key in keys] == [str(i) for i in range(6)]
    # The partitions' hash tags spread over more than one master.
    assert len({await redis_cluster.master_of_key(key) for key in keys}) > 1


async def test_a_killed_master_is_replaced_by_its_replica_and_rejoins_as_one(
    whole_redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    cluster = whole_redis_cluster
    key = "chancery:test:{p0}:offset"
    slot = key_slot(key.encode())
    async with cluster_client(cluster) as client:
        await client.set(key, "41")
        # WAIT: the replica has the write before the master dies (replication is async).
        replicated = await client.execute_command(
            "WAIT", 1, 5000, target_nodes=client.get_node_from_key(key)
        )
        assert replicated == 1
    master = await cluster.master_of_slot(slot)
    (replica,) = [r for r, m in (await cluster.view()).replicas.items() if m == master]

    cluster.kill_node(master)
    # Bounded by the node timeout twice (failure agreement, then the election) and a margin.
    promoted = await cluster.wait_for_master(slot, not_node=master)

    assert promoted == replica
    async with cluster_client(cluster) as client:
        assert await client.get(key) == "41"
        await client.set(key, "42")

    cluster.start_node(master)
    assert await cluster.wait_for_replica(master) == replica
    assert await cluster.role(master) == "slave"
    await cluster.wait_ok()
    async with cluster_client(cluster) as client:
        assert await client.get(key) == "42"
