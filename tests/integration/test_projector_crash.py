"""SIGKILL the projector again and again during a replay: nothing lost, nothing applied twice.

The projector runs as a real process (`python -m services.projector`) and is killed with
SIGKILL at random moments (while it starts, fetches, plans, or waits for its Lua script),
then restarted, until it has replayed the whole log. Its read models must then equal, key
by key, those of a clean replay of the same log in another database, and equal the domain
folds; the day buckets count each event's effects exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.servers import _Databases

from .projector_helpers import (
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
    stored_offsets,
    wait_until_applied,
)
from .test_projector_domain import projector_settings

pytestmark = pytest.mark.integration

EVENTS = 50_000
MIN_KILLS_MID_REPLAY = 10
MAX_CYCLES = 16
SAME_GROUP_CYCLES = {5}


@pytest.fixture
def reference_db_url(_redis_databases: _Databases) -> str:
    """A second empty database, for the clean replay."""
    return _redis_databases.take()


async def _applied(redis: Redis, partitions: int) -> int:
    version = await active_version(redis)
    if version is None:
        return 0
    offsets = await stored_offsets(redis, version, partitions)
    return sum((o if o is not None else -1) + 1 for o in offsets)


@pytest.mark.timeout(900)
async def test_sigkill_during_replay_loses_nothing_and_applies_nothing_twice(
    chancery_env: dict[str, str],
    kafka_bootstrap: str,
    kafka_topic: str,
    reference_db_url: str,
    tmp_path: Path,
) -> None:
    log = generate_log(EVENTS, seed=20240501)
    await publish(kafka_bootstrap, kafka_topic, log)
    ends = await end_offsets(kafka_bootstrap, kafka_topic)
    total = sum(ends.values())
    assert total >= EVENTS

    redis = Redis.from_url(chancery_env["CHANCERY_REDIS_URL"])
    projector = ProjectorProcess(
        chancery_env, tmp_path / "projector.log", CHANCERY_PROJECTOR_BATCH_EVENTS="300"
    )
    rng = random.Random(5)
    kills_mid_replay = 0
    group = f"crash-{uuid.uuid4().hex[:8]}"
    try:
        for cycle in range(MAX_CYCLES):
            before = await _applied(redis, len(ends))
            if before >= total:
                break
            # Mostly a fresh group (no wait for the killed member's session to expire); now
            # and then the same group, as a restarted instance would rejoin it.
            if cycle not in SAME_GROUP_CYCLES:
                group = f"crash-{uuid.uuid4().hex[:8]}"
            projector.start(CHANCERY_GROUP_ID=group)
            # Kill at a random moment once this run is applying batches (soon enough that
            # the replay takes many runs: a run applies thousands of events a second).
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if await _applied(redis, len(ends)) > before:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            now = await _applied(redis, len(ends))
            projector.kill()
            if 0 < now < total:
                kills_mid_replay += 1
        # The last run goes to the end, then stops gracefully.
        projector.start(CHANCERY_GROUP_ID=f"crash-{uuid.uuid4().hex[:8]}")
        version = await wait_until_applied(redis, ends, timeout_s=300)
        projector.stop()
        assert kills_mid_replay >= MIN_KILLS_MID_REPLAY, (
            f"only {kills_mid_replay} kills landed mid-replay"
        )
        killed_dump = await canonical_dump(redis, version)
    finally:
        projector.kill()
        await redis.aclose()

    # The clean replay, into the other database, without interruption.
    started = time.monotonic()
    settings = projector_settings({**chancery_env, "CHANCERY_REDIS_URL": reference_db_url})
    from services.projector.app import run_rebuild

    clean_version, _ = await run_rebuild(settings, keep_old=True)
    clean = Redis.from_url(reference_db_url)
    try:
        clean_dump = await canonical_dump(clean, clean_version)
    finally:
        await clean.aclose()
    assert time.monotonic() - started < 300

    assert clean_version == version == 1
    assert diff_dumps(killed_dump, clean_dump) == []
    events = [p.event for p in log]
    assert day_count(killed_dump) == effects_count(events)
    assert_matches_domain(killed_dump, events)
    assert "Traceback" not in projector.log() or "KeyboardInterrupt" in projector.log()
