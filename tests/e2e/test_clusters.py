"""The three services on three Kafka nodes and a Redis Cluster answer what they answer on
one broker and one Redis.

The article's events and the GDELT and ICEWS reference samples go through ingest into two
stacks side by side: one on the session's broker and Redis, one on the clusters (a topic
with three replicas and min.insync.replicas=2, the read models spread over three masters).
Then the same few thousand questions (every pair, actor and person the events name, a sample
of events by id: tests/reliability/answers.py) are asked of both APIs and the answers
compared key by key, where things sit in the log left aside. Reads pass `min_position`, so
the waits read every master's streams; the stream itself is read from the start on the
cluster, and a live subscription is woken by an event on any master.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from chancery import keyspace
from chancery.contract import Event, parse_incoming
from chancery.keyspace import PartitionSpace
from chancery.positions import Position
from services.cli.importers.datasets import Gdelt, Icews
from services.cli.local import (
    CLUSTER_MIN_INSYNC_REPLICAS,
    CLUSTER_REPLICATION_FACTOR,
    KafkaCluster,
    chancery_topics,
    ensure_topics_blocking,
)
from services.cli.local import (
    RedisCluster as LocalRedisCluster,
)
from tests.e2e.conftest import make_keys, seed_events
from tests.e2e.sse import Subscriber
from tests.reliability.answers import answers, differences, questions, without
from tests.reliability.stack import Services, create_topic, new_topic_name, running
from tests.servers import _Databases, flush_redis_cluster
from tests.unit.cli.reference import GDELT2, ICEWS, map_file

pytestmark = pytest.mark.e2e

BATCH = 500
QUESTIONS = 500
"""Asked of both stacks, drawn from every question about the events (a few thousand)."""
PARTITIONS = 6
PAIRS = (("FRA", "DEU"), ("JPN", "KOR"), ("BRA", "ARG"), ("EGY", "ISR"), ("IND", "PAK"))


def sample_events() -> list[Event]:
    """The article's events, then the two reference samples as `chancery import` maps them."""
    events = [parse_incoming(e) for e in seed_events()]
    for dataset, path in ((Gdelt(), GDELT2), (Icews(), ICEWS)):
        events += map_file(dataset, path).events()
    return events


def envelope(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)


@dataclass
class Pair:
    single: Services
    cluster: Services
    events: list[Event]
    redis_cluster: LocalRedisCluster

    async def load(self, events: list[Event]) -> None:
        """Post `events` to both, in the same batches, and wait until both applied them."""
        for stack in (self.single, self.cluster):
            position: Position | None = None
            for start in range(0, len(events), BATCH):
                body = [envelope(e) for e in events[start : start + BATCH]]
                posted = Position.parse(await stack.post(body))
                position = posted if position is None else position.merge(posted)
            assert position is not None
            await stack.until_applied(position.token())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pair(
    kafka_bootstrap: str,
    _redis_databases: _Databases,
    kafka_cluster: KafkaCluster,
    redis_cluster: LocalRedisCluster,
) -> AsyncIterator[Pair]:
    keys, authenticator = make_keys()
    kafka_cluster.heal()
    redis_cluster.heal()
    flush_redis_cluster(redis_cluster)
    topic = new_topic_name("clusters")
    await asyncio.to_thread(
        ensure_topics_blocking,
        kafka_cluster.bootstrap_servers,
        chancery_topics(
            topic,
            f"{topic}.dlq",
            partitions=PARTITIONS,
            replication_factor=CLUSTER_REPLICATION_FACTOR,
            min_insync_replicas=CLUSTER_MIN_INSYNC_REPLICAS,
        ),
        timeout_s=60.0,
    )
    single_topic = await asyncio.to_thread(create_topic, kafka_bootstrap, new_topic_name("single"))
    on_clusters = {
        "redis_cluster": True,
        "replication_factor": CLUSTER_REPLICATION_FACTOR,
        "min_insync_replicas": CLUSTER_MIN_INSYNC_REPLICAS,
    }
    async with (
        running(
            bootstrap=kafka_bootstrap,
            redis_url=_redis_databases.take(),
            keys=keys,
            authenticator=authenticator,
            topic=single_topic,
        ) as single,
        running(
            bootstrap=kafka_cluster.bootstrap_servers,
            redis_url=redis_cluster.url,
            keys=keys,
            authenticator=authenticator,
            topic=topic,
            shared=on_clusters,
        ) as cluster,
    ):
        events = sample_events()
        result = Pair(single, cluster, events, redis_cluster)
        await result.load(events)
        yield result


async def test_the_clusters_answer_every_question_as_single_nodes_do(pair: Pair) -> None:
    every = questions(pair.events, sample_ids=100)
    qs = random.Random(7).sample(every, min(QUESTIONS, len(every)))
    import time

    t0 = time.monotonic()
    single = await answers(pair.single.api, qs)
    t1 = time.monotonic()
    cluster = await answers(pair.cluster.api, qs)
    t2 = time.monotonic()
    print("QUESTIONS", len(every), len(qs), t1 - t0, t2 - t1)

    # When ingest accepted each event differs between the two stacks, as positions do.
    stamped = frozenset({"recordedtime"})
    assert differences(without(single, stamped), without(cluster, stamped)) == []
    # Not vacuous: most questions have an answer, and the answers are about the samples.
    found = [a for a in single.values() if a.status == 200]
    assert len(found) > 0.9 * len(qs)
    assert sum(len(a.body.get("items", ())) for a in found) > 1000


async def test_the_read_models_are_spread_over_the_masters(pair: Pair) -> None:
    client = RedisCluster.from_url(pair.redis_cluster.url)
    try:
        active = await client.get(keyspace.ACTIVE_VERSION)
        assert active is not None
        version = int(active)
    finally:
        await client.aclose()
    view = await pair.redis_cluster.view()
    masters = {
        view.master_of_slot(key_slot(PartitionSpace(version, p).offset.encode()))
        for p in range(PARTITIONS)
    }
    assert len(masters) == 3


async def test_the_stream_from_the_start_holds_every_event_once_in_log_order(pair: Pair) -> None:
    api = pair.cluster.api
    expected = {(e.source, e.id) for e in pair.events}
    async with api.stream("GET", "/v1/stream", params={"after": f"{pair.cluster.topic}@"}) as r:
        assert r.status_code == 200
        subscriber = Subscriber(r)
        try:
            received = await subscriber.events(len(expected), within=120)
        finally:
            await subscriber.close()
    offsets: dict[int, int] = {}
    seen: set[tuple[str, str]] = set()
    for message in received:
        assert message.data is not None
        assert message.id is not None
        body = json.loads(message.data)
        seen.add((body["source"], body["id"]))
        # The id is the position after the event: its partition moved, forward, alone.
        after = dict(Position.parse(message.id).offsets)
        moved = {p: o for p, o in after.items() if offsets.get(p) != o}
        assert len(moved) == 1, (offsets, after)
        ((partition, offset),) = moved.items()
        assert offset > offsets.get(partition, -1), "an entry out of order or twice"
        offsets = after
    assert seen == expected
    assert len(offsets) == PARTITIONS  # every master's partitions


async def test_a_live_subscription_gets_events_on_every_master(pair: Pair) -> None:
    """Subscribed from now (blocked on six partitions' streams on three masters), a client
    gets each event posted, whichever master holds its partition."""
    api = pair.cluster.api
    posted = [_coded(f"live-{uuid.uuid4().hex[:8]}-{n}", a, b) for n, (a, b) in enumerate(PAIRS)]
    async with api.stream("GET", "/v1/stream") as response:
        subscriber = Subscriber(response)
        try:
            await subscriber.next(within=30)  # the start message: subscribed from now
            for event in posted:
                await pair.cluster.post([event])
                (message,) = await subscriber.events(1, within=30)
                assert message.data is not None
                assert json.loads(message.data)["id"] == event["id"]
        finally:
            await subscriber.close()


def _coded(event_id: str, a: str, b: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "https://wire.example/clusters",
        "type": "diplomacy.event.coded",
        "time": "2024-01-02T00:00:00Z",
        "data": {"actor1": a, "actor2": b, "cameo": "040", "occurred": "2024-01-01"},
    }
