"""A Redis Cluster master SIGKILLed under the running services; its replica takes over.

Ingest, the live projector and the API run on three Kafka nodes and the Redis Cluster, with
the read models of a generated log applied. A poller asks the API the same questions round
and round (every read touches every partition, so every master), and writers post new
events about other pairs through ingest, retrying a 503 after its Retry-After. Then the
master serving partition 0's slot is SIGKILLed; its replica is promoted within the node
timeout and a margin. Nobody restarts a service.

- Every API answer is a 503 with Retry-After and a problem body, or a 200 equal to the
  answer from before: while a slot has no master, never a wrong or partial answer.
- The failover is felt (503s), and the services come back by themselves (200s and 202s
  after the promotion).
- Ingest answers every request 202 or 503 (its idempotency records are on the cluster too),
  and every event it acknowledged is in the read models once, where its 202 said.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from redis.crc import key_slot

from chancery.auth import Authenticator
from chancery.keyspace import PartitionSpace
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
    active_version,
    end_offsets,
    generate_log,
    publish,
    redis_of,
    wait_until_applied,
)
from tests.servers import flush_redis_cluster
from tests.unit.ingest.support import SOURCE, make_event

from .answers import Answer, Question, answers, ask, questions
from .evidence import problem_shape
from .stack import Services, new_topic_name, running

pytestmark = pytest.mark.reliability

PARTITIONS = 6
QUESTIONS = 40
AFTER_S = 3.0
# Pairs the generated log never names: events about them change none of the answers asked.
OTHER_PAIRS = (("JPN", "KOR"), ("BRA", "ARG"), ("EGY", "ISR"), ("MEX", "CAN"), ("GBR", "IRL"))
MAX_ATTEMPTS = 240


@dataclass
class Observed:
    phase: str = "steady"
    api: Counter[tuple[str, int]] = field(default_factory=Counter)
    ingest: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    acknowledged: dict[str, tuple[int, int]] = field(default_factory=dict)
    gave_up: int = 0


async def _poll(
    api: httpx.AsyncClient,
    qs: list[Question],
    before: dict[str, Answer],
    seen: Observed,
    stop: asyncio.Event,
) -> None:
    n = 0
    while not stop.is_set():
        question = qs[n % len(qs)]
        n += 1
        got = await ask(api, question)
        # The phase when answered: a question asked before the kill and answered after it is
        # the failover's, and its 503 as right as any other.
        phase = seen.phase
        seen.api[(phase, got.status)] += 1
        if got.status == 200:
            if got != before[question.name]:
                seen.wrong.append(f"{phase}: {question.name}: a 200 that differs")
        elif got.status == 503 and phase != "steady":
            seen.wrong += [f"{phase}: {question.name}: {p}" for p in problem_shape(got.body, 503)]
        else:
            seen.wrong.append(f"{phase}: {question.name}: {got.status} {str(got.body)[:200]}")
        await asyncio.sleep(0.005)


async def _write(n: int, ingest: httpx.AsyncClient, seen: Observed, stop: asyncio.Event) -> None:
    rng = random.Random(n)
    sent = 0
    while not stop.is_set():
        size = rng.choice([1, 1, 5])
        events = []
        for i in range(size):
            a, b = rng.choice(OTHER_PAIRS)
            event = make_event(id_=f"failover-{n}-{sent + i}")
            event["data"] = {**event["data"], "actor1": a, "actor2": b}
            events.append(event)
        sent += size
        for _ in range(MAX_ATTEMPTS):
            response = await ingest.post(
                "/v1/events/batch",
                content=json.dumps(events),
                headers={"Content-Type": BATCH_TYPE},
            )
            seen.ingest[(seen.phase, response.status_code)] += 1
            if response.status_code == 202:
                for item in response.json()["accepted"]:
                    ((p, offset),) = Position.parse(item["position"]).offsets.items()
                    seen.acknowledged[item["id"]] = (p, offset)
                break
            if response.status_code != 503 or "retry-after" not in response.headers:
                seen.wrong.append(f"ingest: {response.status_code} {response.text[:200]}")
                break
            await asyncio.sleep(0.5)
        else:
            seen.gave_up += 1
        await asyncio.sleep(rng.uniform(0.01, 0.05))


@pytest.mark.timeout(600)
async def test_a_master_failing_over_is_503_or_whole_answers_and_loses_no_write(
    kafka_cluster: KafkaCluster,
    redis_cluster: RedisCluster,
    keys: Keys,
    authenticator: Authenticator,
) -> None:
    kafka_cluster.heal()
    redis_cluster.heal()
    flush_redis_cluster(redis_cluster)
    bootstrap = kafka_cluster.bootstrap_servers
    topic = new_topic_name("redis-failover")
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
    log = generate_log(3000, seed=8)
    await publish(bootstrap, topic, log)
    ends = await end_offsets(bootstrap, topic)
    redis = redis_of({"CHANCERY_REDIS_URL": redis_cluster.url, "CHANCERY_REDIS_CLUSTER": "true"})
    seen = Observed()
    stop = asyncio.Event()
    try:
        async with running(
            bootstrap=bootstrap,
            redis_url=redis_cluster.url,
            keys=keys,
            authenticator=authenticator,
            topic=topic,
            wait_ready=False,
            ingest={"publish_timeout_s": 2.0, "retry_after_s": 1},
            shared={
                "redis_cluster": True,
                "replication_factor": CLUSTER_REPLICATION_FACTOR,
                "min_insync_replicas": CLUSTER_MIN_INSYNC_REPLICAS,
            },
        ) as services:
            version = await wait_until_applied(redis, ends, timeout_s=180)
            qs = random.Random(1).sample(questions([p.event for p in log]), QUESTIONS)
            before = await answers(services.api, qs)
            assert all(a.status == 200 for a in before.values())
            tasks = [asyncio.create_task(_poll(services.api, qs, before, seen, stop))]
            tasks += [asyncio.create_task(_write(n, services.ingest, seen, stop)) for n in range(2)]
            try:
                await asyncio.sleep(1.0)
                offset_key = PartitionSpace(version, 0).offset
                victim = await redis_cluster.master_of_key(offset_key)
                seen.phase = "failover"
                redis_cluster.kill_node(victim)
                await redis_cluster.wait_for_master(key_slot(offset_key.encode()), not_node=victim)
                seen.phase = "after"
                await _until_served(seen)
                await asyncio.sleep(AFTER_S)
            finally:
                stop.set()
                await asyncio.gather(*tasks)
            services.projector_alive()
            final = await _read_back(services, seen)
            assert await active_version(redis) == version
    finally:
        await redis.aclose()

    print(f"API {dict(seen.api)}; ingest {dict(seen.ingest)}; {len(seen.acknowledged)} acked")
    assert seen.wrong == [], "\n".join(seen.wrong[:20])
    assert seen.api[("failover", 503)] > 0, "the failover was not felt"
    assert seen.api[("after", 200)] > 0
    assert seen.ingest[("after", 202)] > 0
    assert seen.gave_up == 0
    assert final == [], "\n".join(final[:10])


async def _until_served(seen: Observed, timeout_s: float = 60) -> None:
    """Until the API answers and ingest accepts again (by themselves: nobody restarts)."""
    async with asyncio.timeout(timeout_s):
        while not (seen.api[("after", 200)] and seen.ingest[("after", 202)]):  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def _read_back(services: Services, seen: Observed) -> list[str]:
    """Each acknowledged event, found once where its 202 said (what is wrong, if any)."""
    position: Position | None = None
    for p, offset in seen.acknowledged.values():
        at = Position.at(services.topic, p, offset)
        position = at if position is None else position.merge(at)
    assert position is not None
    await services.until_applied(position.token())
    wrong: list[str] = []
    for event_id, (p, offset) in seen.acknowledged.items():
        response = await services.api.get(f"/v1/events/{event_id}", params={"source": SOURCE})
        body: Any = response.json()
        if response.status_code != 200 or len(body["matches"]) != 1:
            wrong.append(f"{event_id}: {response.status_code} {str(body)[:200]}")
        elif body["matches"][0]["log_position"] != Position.at(services.topic, p, offset).token():
            wrong.append(f"{event_id}: at {body['matches'][0]['log_position']}, not {p}:{offset}")
    return wrong
