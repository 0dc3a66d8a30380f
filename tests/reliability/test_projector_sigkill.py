"""Scenario 1: the projector SIGKILLed again and again during a replay of 100,000 events.

The log (every event type, with duplicates that got past ingest and retractions, some
before their targets; tests/integration/projector_helpers.py) is produced to a topic of the
test's own. `python -m services.projector` then replays it as a real process, which is
killed with SIGKILL at random moments, at least 20 times before the replay is done: while it
starts, joins its group, fetches, plans, or waits for its Lua script. Each kill is followed
by a restart, in a fresh consumer group mostly and now and then in the same one. A last run
goes to the end (tests/integration/sigkill_replay.py, which the 50,000-event integration
test shares).

Then the read models must be those of a clean replay (`chancery rebuild`'s code into another
database, uninterrupted), compared as canonical dumps key by key; nothing lost (every
identity in the log is stored, once) and nothing applied twice (the day buckets count each
event's effects exactly once, the stream holds one entry per identity); and they must equal
the pure domain folds of the log.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.projector_helpers import (
    assert_matches_domain,
    day_count,
    diff_dumps,
    effects_count,
    end_offsets,
    generate_log,
    publish,
    read_models,
)
from tests.integration.sigkill_replay import KillPlan, clean_replay, replay_under_sigkill
from tests.servers import _Databases

from .stack import create_topic, new_topic_name

pytestmark = [pytest.mark.reliability, pytest.mark.reliability_long]

EVENTS = 100_000
MIN_KILLS = 20


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

    started = time.monotonic()
    plan = KillPlan(cycles=34, seed=1)
    killed = await replay_under_sigkill(env, ends, tmp_path / "projector.log", plan)
    replay_s = time.monotonic() - started
    _, clean_dump = await clean_replay(env, databases.take())

    mid_replay = killed.mid_replay(total)
    applying = [k for k in mid_replay if k.moment == "applying"]
    print(
        f"{total} events; {len(killed.kills)} kills, {len(mid_replay)} mid-replay "
        f"({len(applying)} while applying), at {[k.applied for k in killed.kills]}; "
        f"replay with kills {replay_s:.0f} s"
    )
    assert len(mid_replay) >= MIN_KILLS
    assert len(applying) >= MIN_KILLS // 2
    assert diff_dumps(killed.dump, clean_dump) == []
    events = [p.event for p in log]
    models = read_models(killed.dump)
    assert models.identities == {e.key for e in events}  # none lost
    assert models.stream_entries == len(models.identities)  # one stream entry each
    assert day_count(killed.dump) == effects_count(events)  # no effect counted twice
    assert_matches_domain(killed.dump, events)
    assert "Traceback" not in killed.log
