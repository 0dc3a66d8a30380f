"""Scenario 4: the same events delivered twice and shuffled give the same read models.

A reproducible log (every event type, duplicates that got past ingest, retractions, some
before their targets; tests/integration/projector_helpers.py) is produced straight to Kafka
several times, each to a topic of its own, each replayed by its own projector into its own
database and read through its own API:

- clean: the log once, in order;
- twice, shuffled: every record twice, the whole in a random order (so each partition holds
  its records in a new order, and duplicates anywhere before or after their original);
- partition by partition: every record twice, shuffled within its partition, and the
  partitions produced one at a time in a random order while the projector runs, each
  applied before the next is produced (the interleaving across partitions the projector
  sees is the opposite of a replay's).
- re-stamped copies first: copies of some events stamped a month later (a client's retry
  that ingest accepted again after the original's claim lapsed) placed before the whole log:
  the read models keep the copy recorded first, wherever each lands.

Records keep their key, so each lands in the partition the default partitioner gives it, as
everything that writes to the topic does. The API's answers to a few hundred questions about
the log (every pair, actor and person, events by id; tests/reliability/answers.py) must be
the same in all three runs, bar where things sit in the log; each run's read models must also
equal the pure domain folds of the log.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import DefaultPartitioner
from redis.asyncio import Redis

from chancery.auth import Authenticator
from chancery.contract import encode_event, stamp
from tests.e2e.conftest import Keys
from tests.integration.projector_helpers import (
    Published,
    assert_matches_domain,
    canonical_dump,
    end_offsets,
    generate_log,
    publish,
    wait_until_applied,
)
from tests.servers import _Databases

from .answers import Answer, answers, differences, questions
from .stack import PARTITIONS, create_topic, new_topic_name, running

pytestmark = pytest.mark.reliability

EVENTS = 6_000


def exact_copies(log: list[Published]) -> list[Published]:
    """The log with every duplicate made a byte-for-byte copy of the first record of its
    identity (generate_log also makes re-stamped copies, with a later `recordedtime`:
    which of those the read models keep depends on arrival order, the known bug of
    test_a_restamped_copy_arriving_first_changes_nothing)."""
    first: dict[str, Published] = {}
    out = []
    for record in log:
        kept = first.setdefault(record.event.key, record)
        out.append(kept)
    return out


def partition_of(record: Published) -> int:
    return int(DefaultPartitioner()(record.key.encode(), list(range(PARTITIONS)), []))


async def _replayed(
    bootstrap: str,
    databases: _Databases,
    keys: Keys,
    authenticator: Authenticator,
    phases: list[list[Published]],
    log: list[Published],
) -> dict[str, Answer]:
    """Produce `phases` one after the other (each applied before the next), then ask."""
    topic = await asyncio.to_thread(create_topic, bootstrap, new_topic_name("order"))
    url = databases.take()
    redis = Redis.from_url(url)
    try:
        async with running(
            bootstrap=bootstrap,
            redis_url=url,
            keys=keys,
            authenticator=authenticator,
            topic=topic,
            wait_ready=False,
            projector_settings={"max_batch_events": 150},
        ) as services:
            version = None
            for phase in phases:
                await publish(bootstrap, topic, phase)
                ends = await end_offsets(bootstrap, topic)
                version = await wait_until_applied(redis, ends, timeout_s=180)
            assert version is not None
            events = [p.event for p in log]
            assert_matches_domain(await canonical_dump(redis, version), events)
            return await answers(services.api, questions(events))
    finally:
        await redis.aclose()


@pytest.mark.timeout(600)
async def test_twice_and_shuffled_gives_the_read_models_of_the_clean_run(
    kafka_bootstrap: str, databases: _Databases, keys: Keys, authenticator: Authenticator
) -> None:
    log = exact_copies(generate_log(EVENTS, seed=44))
    assert len({r.event.key for r in log}) < len(log)  # duplicates that got past ingest
    rng = random.Random(4)
    clean = await _replayed(kafka_bootstrap, databases, keys, authenticator, [log], log)
    assert {a.status for a in clean.values()} == {200}
    assert len(clean) >= 300

    twice = log + log
    rng.shuffle(twice)
    shuffled = await _replayed(kafka_bootstrap, databases, keys, authenticator, [twice], log)
    assert differences(clean, shuffled) == []

    by_partition: dict[int, list[Published]] = defaultdict(list)
    for record in log + log:
        by_partition[partition_of(record)].append(record)
    order = list(by_partition)
    rng.shuffle(order)
    phases = []
    for p in order:
        records = by_partition[p]
        rng.shuffle(records)
        phases.append(records)
    assert len(phases) == PARTITIONS
    phased = await _replayed(kafka_bootstrap, databases, keys, authenticator, phases, log)
    assert differences(clean, phased) == []


async def test_a_restamped_copy_arriving_first_changes_nothing(
    kafka_bootstrap: str, databases: _Databases, keys: Keys, authenticator: Authenticator
) -> None:
    log = exact_copies(generate_log(400, seed=45, duplicates=0.0))
    later = datetime(2023, 8, 1, tzinfo=UTC)
    copies = [
        Published(
            r.key, encode_event(stamp(r.event, recorded_at=later, partition_key=r.key)), r.event
        )
        for r in log[:: len(log) // 20]
    ]
    clean = await _replayed(kafka_bootstrap, databases, keys, authenticator, [log + copies], log)
    reordered = await _replayed(
        kafka_bootstrap, databases, keys, authenticator, [copies + log], log
    )
    assert differences(clean, reordered) == []
