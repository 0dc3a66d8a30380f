"""Scenario 2: the Kafka broker stopped and started again while ingest is under steady load.

The broker is the module's own (stopping the session's would break every session-scoped
client). Ingest (publish timeout 2 s, Retry-After 1 s), the live projector and the API run
against it. Several clients send events without pause, single and in batches, each with ids
of its own, and behave as a client should: a 503 is retried with the same events after its
Retry-After. Meanwhile the broker is stopped, kept down, and started again; the same ingest
process serves on (nobody restarts it).

One run (the module fixture `outage`), then one test per claim:
- every answer was a 202 or a 503; every 503 carries Retry-After and a problem body;
- the outage was felt (503s) and ingest recovered by itself (202s after the broker came back,
  every client's request answered 202 in the end, /readyz 200);
- no 202 for anything not in the log: every event a 202 acknowledged is in the topic, read
  back by a consumer of our own, at exactly the partition and offset the 202 gave, and no
  event is in the log twice;
- after recovery every acknowledged event is in the read models exactly once: the projector
  applied the whole log, its read models equal the domain folds of the log (each event's
  effects counted once), and the API finds the acknowledged events at their positions.
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
from redis.asyncio import Redis

from chancery.auth import Authenticator
from chancery.contract import decode_event
from chancery.positions import Position
from services.cli.local import KafkaServer
from tests.e2e.conftest import BATCH_TYPE, Keys
from tests.integration.projector_helpers import (
    assert_matches_domain,
    canonical_dump,
    end_offsets,
    wait_until_applied,
)
from tests.integration.test_ingest import read_topic
from tests.servers import _Databases
from tests.unit.ingest.support import SOURCE, make_event

from .evidence import problem_shape
from .stack import create_topic, new_topic_name, running

pytestmark = [pytest.mark.reliability, pytest.mark.reliability_long]

WORKERS = 4
BEFORE_S = 3.0
DOWN_S = 8.0
AFTER_S = 8.0
MAX_ATTEMPTS = 240  # per request (0.5 s apart): a bound on a client's patience
DRAIN_S = 30.0  # after the load stops, how long unanswered requests may still retry
RECOVERY_S = 45.0
API_SAMPLE = 400


@dataclass
class Load:
    """What the clients sent, and every answer they got."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    acknowledged: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (p, offset)
    retried: set[str] = field(default_factory=set)
    phase: str = "before"
    gave_up: int = 0

    def judge(self, response: httpx.Response, ids: list[str]) -> bool:
        """Record the answer; True when it is final (a 202)."""
        self.statuses[(self.phase, response.status_code)] += 1
        if response.status_code == 202:
            body = response.json()
            assert [a["id"] for a in body["accepted"]] == ids
            for item in body["accepted"]:
                ((partition, offset),) = Position.parse(item["position"]).offsets.items()
                previous = self.acknowledged.setdefault(item["id"], (partition, offset))
                if previous != (partition, offset):
                    self.wrong.append(
                        f"{item['id']}: acknowledged at {previous} and {(partition, offset)}"
                    )
            return True
        if response.status_code == 503:
            retry_after = response.headers.get("retry-after", "")
            if not retry_after.isdigit() or int(retry_after) < 1:
                self.wrong.append(f"503 with Retry-After {retry_after!r}")
            if response.headers.get("content-type") != "application/problem+json":
                self.wrong.append(f"503 of type {response.headers.get('content-type')}")
            else:
                self.wrong += problem_shape(response.json(), 503)
            self.retried.update(ids)
            return False
        self.wrong.append(f"{response.status_code}: {response.text[:300]}")
        return True


async def _client(n: int, ingest: httpx.AsyncClient, load: Load, stop: asyncio.Event) -> None:
    rng = random.Random(n)
    sent = 0
    while not stop.is_set():
        size = rng.choice([1, 1, 1, 3, 10])
        events = [make_event(id_=f"load-{n}-{sent + i}") for i in range(size)]
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
    """Everything the run observed, for the tests below to judge."""

    load: Load
    topic: str
    recovered: bool
    recovery_s: float
    readyz_while_stuck: list[int]
    ready_at_end: int
    records: list[tuple[int, int, bytes, bytes]]
    dump: dict[str, object]
    found: dict[str, Any]
    sample: list[str]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def outage(
    dedicated_kafka: KafkaServer,
    databases: _Databases,
    keys: Keys,
    authenticator: Authenticator,
) -> Outcome:
    """The run: load, the broker stopped and started, load again; then the evidence."""
    bootstrap = dedicated_kafka.bootstrap_servers
    topic = await asyncio.to_thread(create_topic, bootstrap, new_topic_name("outage"))
    redis_url = databases.take()
    load = Load()
    stop = asyncio.Event()
    recovered, recovery_s, readyz = False, float("nan"), []
    async with running(
        bootstrap=bootstrap,
        redis_url=redis_url,
        keys=keys,
        authenticator=authenticator,
        topic=topic,
        ingest={"publish_timeout_s": 2.0, "retry_after_s": 1},
    ) as services:
        clients = [
            asyncio.create_task(_client(n, services.ingest, load, stop)) for n in range(WORKERS)
        ]
        try:
            await asyncio.sleep(BEFORE_S)
            load.phase = "down"
            await asyncio.to_thread(dedicated_kafka.stop)
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(dedicated_kafka.start)
            await asyncio.to_thread(dedicated_kafka.wait_ready, 120)
            load.phase = "recovering"
            back = time.monotonic()
            while time.monotonic() - back < RECOVERY_S:
                if load.statuses[("recovering", 202)]:
                    recovered, recovery_s = True, time.monotonic() - back
                    break
                readyz.append((await services.ingest.get("/readyz")).status_code)
                await asyncio.sleep(0.5)
            load.phase = "after"
            await asyncio.sleep(AFTER_S)
        finally:
            stop.set()
            _, stuck = await asyncio.wait(clients, timeout=DRAIN_S)
            for client in stuck:  # still retrying a request: it never got its 202
                client.cancel()
                load.gave_up += 1
            await asyncio.gather(*clients, return_exceptions=True)
        ready_at_end = (await services.ingest.get("/readyz")).status_code
        services.projector_alive()  # the projector rode out the outage too

        # The log, read back by a consumer of our own; the read models once all is applied.
        records = await read_topic(bootstrap, topic)
        ends = await end_offsets(bootstrap, topic)
        redis = Redis.from_url(redis_url)
        try:
            version = await wait_until_applied(redis, ends, timeout_s=180)
            dump = await canonical_dump(redis, version)
        finally:
            await redis.aclose()
        sample = sorted(load.retried & load.acknowledged.keys()) + random.Random(0).sample(
            sorted(load.acknowledged), min(API_SAMPLE, len(load.acknowledged))
        )
        found: dict[str, Any] = {}
        for event_id in sample:
            response = await services.api.get(f"/v1/events/{event_id}", params={"source": SOURCE})
            found[event_id] = (
                response.json() if response.status_code == 200 else response.status_code
            )
    print(
        f"answers {dict(load.statuses)}; {len(load.acknowledged)} acknowledged, "
        f"{len(load.retried)} retried after a 503, {load.gave_up} given up; recovered "
        f"{recovered} ({recovery_s:.1f} s after the broker was back); "
        f"/readyz meanwhile {Counter(readyz)}"
    )
    return Outcome(
        load, topic, recovered, recovery_s, readyz, ready_at_end, records, dump, found, sample
    )


def test_every_answer_is_202_or_503_and_every_503_carries_retry_after(outage: Outcome) -> None:
    assert outage.load.wrong == [], "\n".join(outage.load.wrong[:20])
    assert outage.load.statuses[("down", 503)] > 0, "the outage was not felt"
    assert outage.load.statuses[("before", 202)] > 0


def test_no_2xx_unless_the_event_is_in_the_log_where_the_2xx_said(outage: Outcome) -> None:
    in_log = Counter(decode_event(value).id for _, _, _, value in outage.records)
    where = {decode_event(value).id: (p, o) for p, o, _, value in outage.records}
    acknowledged = outage.load.acknowledged
    assert len(acknowledged) > 500
    not_in_log = sorted(i for i in acknowledged if i not in in_log)
    assert not_in_log == [], f"202 for {len(not_in_log)} events not in the log: {not_in_log[:5]}"
    misplaced = sorted(i for i, at in acknowledged.items() if where[i] != at)
    assert misplaced == [], f"{len(misplaced)} not where their 202 said: {misplaced[:5]}"
    twice = sorted(i for i, n in in_log.items() if n > 1)
    assert twice == [], f"{len(twice)} events appended twice, e.g. {twice[:5]}"


def test_every_acknowledged_event_is_in_the_read_models_once(outage: Outcome) -> None:
    assert_matches_domain(outage.dump, [decode_event(value) for _, _, _, value in outage.records])
    wrong_reads = []
    for event_id in outage.sample:
        body = outage.found[event_id]
        if not isinstance(body, dict) or len(body["matches"]) != 1:
            wrong_reads.append(f"{event_id}: {str(body)[:200]}")
            continue
        p, o = outage.load.acknowledged[event_id]
        if body["matches"][0]["log_position"] != Position.at(outage.topic, p, o).token():
            wrong_reads.append(f"{event_id}: at {body['matches'][0]['log_position']}, not {p}:{o}")
    assert wrong_reads == [], "\n".join(wrong_reads[:10])
    assert len(outage.sample) >= API_SAMPLE


def test_ingest_recovers_without_a_restart(outage: Outcome) -> None:
    assert outage.recovered, f"no 202 within {RECOVERY_S} s of the broker being back"
    assert outage.load.statuses[("after", 202)] > 0
    assert outage.load.gave_up == 0
    assert outage.ready_at_end == 200
