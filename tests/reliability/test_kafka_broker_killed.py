"""A Kafka broker SIGKILLed under steady ingest load, then started again, on the clusters.

Ingest, the live projector and the API run on three Kafka nodes (the topic: three replicas,
min.insync.replicas=2) and the Redis Cluster. Clients send events without pause, single and
in batches, about many pairs (so every partition gets records), a third of them about one
pair (its partition is the busy one); a 503 is retried with the same events after its
Retry-After, as a client should. Then the leader of the busy partition is SIGKILLed (no
controlled shutdown: the controller fences it when its session ends and a follower in sync
takes over), and started again once the partition has a new leader; it catches up and
rejoins the in-sync replicas. The same ingest process serves throughout.

As Kafka's own system tests judge a broker failure: the set of events acknowledged (202)
equals the set in the log, each once, where its 202 said, and equals the set applied to the
read models, each once. Ingest keeps accepting throughout: the other brokers' partitions at
every moment, the busy partition again as soon as it has a new leader (two copies of each
record remain, so min.insync.replicas=2 still holds).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from chancery.auth import Authenticator
from chancery.contract import decode_event, partition_for, party_key
from chancery.positions import Position
from services.cli.local import (
    CLUSTER_MIN_INSYNC_REPLICAS,
    CLUSTER_REPLICATION_FACTOR,
    KafkaCluster,
    RedisCluster,
    chancery_topics,
    ensure_topics_blocking,
)
from tests.e2e.conftest import BATCH_TYPE, Keys
from tests.integration.projector_helpers import (
    assert_matches_domain,
    canonical_dump,
    end_offsets,
    redis_of,
    wait_until_applied,
)
from tests.integration.test_ingest import read_topic
from tests.servers import flush_redis_cluster
from tests.unit.ingest.support import SOURCE, make_event

from .evidence import problem_shape
from .stack import new_topic_name, running

pytestmark = [pytest.mark.reliability, pytest.mark.reliability_long]

PARTITIONS = 6
WORKERS = 4
BEFORE_S = 4.0
AFTER_ELECTION_S = 3.0
AFTER_S = 4.0
MAX_ATTEMPTS = 240  # per request (0.5 s apart at most): a bound on a client's patience
DRAIN_S = 30.0
API_SAMPLE = 300
BUSY = ("CHN", "USA")
PAIRS = [
    BUSY,
    ("FRA", "DEU"),
    ("JPN", "KOR"),
    ("BRA", "ARG"),
    ("EGY", "ISR"),
    ("IND", "PAK"),
    ("RUS", "UKR"),
    ("IRN", "SAU"),
    ("GBR", "IRL"),
    ("AUS", "NZL"),
    ("TUR", "GRC"),
    ("MEX", "CAN"),
    ("CHN", "KOR"),
    ("CHN", "ISR"),
    ("CHN", "EGY"),
    ("USA", "GBR"),
]
"""Pairs whose keys cover every partition of six."""


@dataclass
class Load:
    """What the clients sent, and every answer they got, by phase."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    acknowledged: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (p, offset)
    acknowledged_in: Counter[tuple[str, int]] = field(default_factory=Counter)  # phase, p
    phase: str = "before"
    gave_up: int = 0

    def judge(self, response: httpx.Response, ids: list[str]) -> bool:
        """Record the answer; True when it is final (a 202)."""
        self.statuses[(self.phase, response.status_code)] += 1
        if response.status_code == 202:
            for item in response.json()["accepted"]:
                ((partition, offset),) = Position.parse(item["position"]).offsets.items()
                previous = self.acknowledged.setdefault(item["id"], (partition, offset))
                if previous != (partition, offset):
                    self.wrong.append(f"{item['id']}: at {previous} and {(partition, offset)}")
                self.acknowledged_in[(self.phase, partition)] += 1
            return True
        if response.status_code == 503:
            retry_after = response.headers.get("retry-after", "")
            if not retry_after.isdigit() or int(retry_after) < 1:
                self.wrong.append(f"503 with Retry-After {retry_after!r}")
            self.wrong += problem_shape(response.json(), 503)
            return False
        self.wrong.append(f"{response.status_code}: {response.text[:300]}")
        return True


def _event(n: int, i: int, rng: random.Random) -> dict[str, Any]:
    a, b = BUSY if rng.random() < 1 / 3 else rng.choice(PAIRS)
    event = make_event(id_=f"load-{n}-{i}")
    event["data"] = {**event["data"], "actor1": a, "actor2": b}
    return event


async def _client(n: int, ingest: httpx.AsyncClient, load: Load, stop: asyncio.Event) -> None:
    rng = random.Random(n)
    sent = 0
    while not stop.is_set():
        size = rng.choice([1, 1, 1, 3, 10])
        events = [_event(n, sent + i, rng) for i in range(size)]
        ids = [e["id"] for e in events]
        sent += size
        for _attempt in range(MAX_ATTEMPTS):
            if size == 1:
                response = await ingest.post("/v1/events", json=events[0])
            else:
                response = await ingest.post(
                    "/v1/events/batch",
                    content=json.dumps(events),
                    headers={"Content-Type": BATCH_TYPE},
                )
            if load.judge(response, ids):
                break
            await asyncio.sleep(min(float(response.headers.get("retry-after", 1)), 1.0) / 2)
        else:
            load.gave_up += 1
        await asyncio.sleep(rng.uniform(0, 0.02))


@dataclass
class Outcome:
    load: Load
    topic: str
    busy: int
    killed: int
    isr_after: list[tuple[int, ...]]
    ready_at_end: int
    records: list[tuple[int, int, bytes, bytes]]
    dump: dict[str, object]
    found: dict[str, Any]
    sample: list[str]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def broker_killed(
    kafka_cluster: KafkaCluster,
    redis_cluster: RedisCluster,
    keys: Keys,
    authenticator: Authenticator,
) -> Outcome:
    """The run: load; the busy partition's leader SIGKILLed, then started again; load on."""
    kafka_cluster.heal()
    redis_cluster.heal()
    flush_redis_cluster(redis_cluster)
    bootstrap = kafka_cluster.bootstrap_servers
    topic = new_topic_name("broker-killed")
    await asyncio.to_thread(
        ensure_topics_blocking,
        bootstrap,
        chancery_topics(
            topic,
            f"{topic}.dlq",
            partitions=PARTITIONS,
            replication_factor=CLUSTER_REPLICATION_FACTOR,
            min_insync_replicas=CLUSTER_MIN_INSYNC_REPLICAS,
        ),
        timeout_s=60.0,
    )
    busy = partition_for(party_key(BUSY).encode(), PARTITIONS)
    load = Load()
    stop = asyncio.Event()
    async with running(
        bootstrap=bootstrap,
        redis_url=redis_cluster.url,
        keys=keys,
        authenticator=authenticator,
        topic=topic,
        ingest={"publish_timeout_s": 2.0, "retry_after_s": 1},
        shared={
            "redis_cluster": True,
            "replication_factor": CLUSTER_REPLICATION_FACTOR,
            "min_insync_replicas": CLUSTER_MIN_INSYNC_REPLICAS,
        },
    ) as services:
        clients = [
            asyncio.create_task(_client(n, services.ingest, load, stop)) for n in range(WORKERS)
        ]
        try:
            await asyncio.sleep(BEFORE_S)
            killed = await kafka_cluster.leader_of(topic, busy)
            load.phase = "down"
            kafka_cluster.kill_node(killed)
            killed_at = time.monotonic()
            await kafka_cluster.wait_for_leader(topic, busy, not_on=killed, timeout_s=90)
            elected_s = time.monotonic() - killed_at
            load.phase = "elected"
            await asyncio.sleep(AFTER_ELECTION_S)
            load.phase = "rejoining"
            await asyncio.to_thread(kafka_cluster.start_node, killed)
            await kafka_cluster.wait_for_isr(topic, size=3, timeout_s=120)
            load.phase = "after"
            await asyncio.sleep(AFTER_S)
        finally:
            stop.set()
            _, stuck = await asyncio.wait(clients, timeout=DRAIN_S)
            for client in stuck:
                client.cancel()
                load.gave_up += 1
            await asyncio.gather(*clients, return_exceptions=True)
        ready_at_end = (await services.ingest.get("/readyz")).status_code
        services.projector_alive()
        isr_after = [p.isr for p in await kafka_cluster.describe(topic)]

        records = await read_topic(bootstrap, topic)
        ends = await end_offsets(bootstrap, topic)
        redis = redis_of(
            {"CHANCERY_REDIS_URL": redis_cluster.url, "CHANCERY_REDIS_CLUSTER": "true"}
        )
        try:
            version = await wait_until_applied(redis, ends, timeout_s=180)
            dump = await canonical_dump(redis, version)
        finally:
            await redis.aclose()
        sample = random.Random(0).sample(
            sorted(load.acknowledged), min(API_SAMPLE, len(load.acknowledged))
        )
        found: dict[str, Any] = {}
        for event_id in sample:
            response = await services.api.get(f"/v1/events/{event_id}", params={"source": SOURCE})
            found[event_id] = (
                response.json() if response.status_code == 200 else response.status_code
            )
    print(
        f"answers {dict(load.statuses)}; {len(load.acknowledged)} acknowledged; partition "
        f"{busy} led by node {killed} until it was killed, another elected {elected_s:.1f} s "
        f"later; acknowledged by phase and partition {dict(load.acknowledged_in)}"
    )
    return Outcome(load, topic, busy, killed, isr_after, ready_at_end, records, dump, found, sample)


def test_every_answer_is_202_or_503_with_retry_after(broker_killed: Outcome) -> None:
    assert broker_killed.load.wrong == [], "\n".join(broker_killed.load.wrong[:20])
    assert broker_killed.load.gave_up == 0
    assert broker_killed.load.statuses[("down", 503)] > 0, "the dead leader was not felt"


def test_ingest_keeps_accepting_throughout(broker_killed: Outcome) -> None:
    acknowledged = broker_killed.load.acknowledged_in
    for phase in ("before", "down", "elected", "rejoining", "after"):
        assert sum(n for (p, _), n in acknowledged.items() if p == phase) > 0, phase
    # While the dead leader was not yet fenced, the partitions of the other brokers took
    # writes; once another leader was elected, the busy partition did again.
    others = {p for (phase, p) in acknowledged if phase == "down"} - {broker_killed.busy}
    assert others, "no other partition accepted while the leader was dead"
    assert {p for (_, p) in acknowledged} == set(range(PARTITIONS))
    assert acknowledged[("elected", broker_killed.busy)] > 0
    assert broker_killed.ready_at_end == 200


def test_the_acknowledged_set_is_the_log_each_once_where_its_202_said(
    broker_killed: Outcome,
) -> None:
    in_log = Counter(decode_event(value).id for _, _, _, value in broker_killed.records)
    where = {decode_event(value).id: (p, o) for p, o, _, value in broker_killed.records}
    acknowledged = broker_killed.load.acknowledged
    assert len(acknowledged) > 500
    assert set(in_log) == set(acknowledged)
    assert sorted(i for i, n in in_log.items() if n > 1) == []
    assert sorted(i for i, at in acknowledged.items() if where[i] != at) == []


def test_the_acknowledged_set_is_applied_each_once(broker_killed: Outcome) -> None:
    events = [decode_event(value) for _, _, _, value in broker_killed.records]
    assert_matches_domain(broker_killed.dump, events)
    wrong = []
    for event_id in broker_killed.sample:
        body = broker_killed.found[event_id]
        if not isinstance(body, dict) or len(body["matches"]) != 1:
            wrong.append(f"{event_id}: {str(body)[:200]}")
            continue
        p, o = broker_killed.load.acknowledged[event_id]
        if body["matches"][0]["log_position"] != Position.at(broker_killed.topic, p, o).token():
            wrong.append(f"{event_id}: at {body['matches'][0]['log_position']}, not {p}:{o}")
    assert wrong == [], "\n".join(wrong[:10])


def test_the_killed_broker_rejoined_every_in_sync_replica_set(broker_killed: Outcome) -> None:
    assert all(broker_killed.killed in isr for isr in broker_killed.isr_after)
