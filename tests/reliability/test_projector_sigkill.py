"""Scenario 1: the projector SIGKILLed again and again during a replay of 100,000 events.

The log (every event type, with duplicates that got past ingest and retractions, some
before their targets; tests/integration/projector_helpers.py) is produced to a topic of the
test's own. `python -m services.projector` then replays it as a real process, which is
killed with SIGKILL at random moments, at least 20 times before the replay is done: while it
starts, joins its group, fetches, plans, or waits for its Lua script (each run is given a
random time to live, from nothing to a second after it starts applying). Each kill is
followed by a restart, in a fresh consumer group mostly and now and then in the same one (so
a restarted member also waits out its dead predecessor's session). A last run goes to the end.

Then the read models must be those of a clean replay (`chancery rebuild`'s code into another
database, uninterrupted), compared as canonical dumps key by key; nothing lost (every
identity in the log is stored, once) and nothing applied twice (the day buckets count each
event's effects exactly once, the stream holds one entry per identity); and they must equal
the pure domain folds of the log.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.projector.app import run_rebuild
from tests.integration.projector_helpers import (
    ProjectorProcess,
    active_version,
    assert_matches_domain,
    canonical_dump,
    day_count,
    diff_dumps,
    effects_count,
    end_offsets,
    generate_log,
    publish,
    read_models,
    stored_offsets,
    wait_until_applied,
)
from tests.integration.test_projector_domain import projector_settings
from tests.servers import _Databases

from .stack import create_topic, new_topic_name

pytestmark = [pytest.mark.reliability, pytest.mark.reliability_long]

EVENTS = 100_000
MIN_KILLS = 20
MAX_CYCLES = 34
STEP = 1 / 32  # of the log, what one run should apply on average before its kill
SAME_GROUP_EVERY = 6
BATCH = "250"


async def _applied(redis: Redis, partitions: int) -> int:
    version = await active_version(redis)
    if version is None:
        return 0
    offsets = await stored_offsets(redis, version, partitions)
    return sum((o if o is not None else -1) + 1 for o in offsets)


@pytest.mark.timeout(1200)
async def test_sigkill_during_a_100k_replay_loses_nothing_and_applies_nothing_twice(
    kafka_bootstrap: str, databases: _Databases, tmp_path: Path
) -> None:
    log = generate_log(EVENTS, seed=20260101)
    topic = await asyncio.to_thread(create_topic, kafka_bootstrap, new_topic_name("sigkill"))
    await publish(kafka_bootstrap, topic, log)
    ends = await end_offsets(kafka_bootstrap, topic)
    total = sum(ends.values())
    assert total >= EVENTS
    env = {
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CHANCERY_TOPIC": topic,
        "CHANCERY_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "CHANCERY_REDIS_URL": databases.take(),
    }
    reference_url = databases.take()

    redis = Redis.from_url(env["CHANCERY_REDIS_URL"])
    projector = ProjectorProcess(
        env, tmp_path / "projector.log", CHANCERY_PROJECTOR_BATCH_EVENTS=BATCH
    )
    rng = random.Random(1)
    kills: list[tuple[str, int]] = []  # (moment, events applied when killed)
    group = f"sigkill-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    # A run lives up to `longest` seconds once it applies: shorter when runs get too far, longer
    # when they hardly move, so that the kills spread over the whole replay however fast the
    # projector is.
    longest = 0.5
    try:
        for cycle in range(MAX_CYCLES):
            before = await _applied(redis, len(ends))
            if before >= total:
                break
            if cycle % SAME_GROUP_EVERY:
                group = f"sigkill-{uuid.uuid4().hex[:8]}"
            projector.start(CHANCERY_GROUP_ID=group)
            if rng.random() < 0.2:  # while it starts, connects, joins, seeks
                moment = "starting"
                await asyncio.sleep(rng.uniform(0.0, 2.5))
            else:  # once it applies batches: mid-fetch, mid-plan, mid-script
                moment = "applying"
                async with asyncio.timeout(90):
                    while await _applied(redis, len(ends)) <= before:
                        assert projector.alive(), projector.log()[-2000:]
                        await asyncio.sleep(0.01)
                await asyncio.sleep(rng.uniform(0.0, longest))
            projector.kill()
            kills.append((moment, await _applied(redis, len(ends))))
            if moment == "applying":
                longest *= 0.7 if kills[-1][1] - before > total * STEP else 1.3
                longest = min(longest, 2.0)
        # The last run goes to the end, then stops gracefully.
        # (If the kills already took it to the end, it must still be up before SIGTERM.)
        projector.start(CHANCERY_GROUP_ID=f"sigkill-{uuid.uuid4().hex[:8]}")
        await projector.wait_serving()
        version = await wait_until_applied(redis, ends, timeout_s=600)
        assert projector.stop() == 0, projector.log()[-3000:]
        killed_dump = await canonical_dump(redis, version)
    finally:
        projector.kill()
        await redis.aclose()
    replay_s = time.monotonic() - started

    # The clean replay, uninterrupted, into the other database.
    settings = projector_settings({**env, "CHANCERY_REDIS_URL": reference_url})
    clean_version, _ = await run_rebuild(settings, keep_old=True)
    clean = Redis.from_url(reference_url)
    try:
        clean_dump = await canonical_dump(clean, clean_version)
    finally:
        await clean.aclose()

    mid_replay = [k for k in kills if 0 < k[1] < total]
    print(
        f"{total} events; {len(kills)} kills, {len(mid_replay)} mid-replay "
        f"({sum(1 for m, _ in mid_replay if m == 'applying')} while applying), "
        f"at {[n for _, n in kills]}; replay with kills {replay_s:.0f} s"
    )
    assert len(mid_replay) >= MIN_KILLS
    assert sum(1 for m, _ in mid_replay if m == "applying") >= MIN_KILLS // 2
    assert diff_dumps(killed_dump, clean_dump) == []
    events = [p.event for p in log]
    models = read_models(killed_dump)
    assert models.identities == {e.key for e in events}  # none lost
    assert models.stream_entries == len(models.identities)  # one stream entry each
    assert day_count(killed_dump) == effects_count(events)  # no effect counted twice
    assert_matches_domain(killed_dump, events)
    assert "Traceback" not in projector.log()
