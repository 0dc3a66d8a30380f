"""SIGKILL the projector again and again during a replay: nothing lost, nothing applied twice.

The projector runs as a real process (`python -m services.projector`) and is killed with
SIGKILL at random moments (while it starts, fetches, plans, or waits for its Lua script;
tests/integration/sigkill_replay.py), then restarted, until it has replayed the whole log.
Its read models must then equal, key by key, those of a clean replay of the same log in
another database, and equal the domain folds; the day buckets count each event's effects
exactly once. The reliability suite runs the same at twice the size and kills
(tests/reliability/test_projector_sigkill.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import _Databases

from .projector_helpers import (
    assert_matches_domain,
    day_count,
    diff_dumps,
    effects_count,
    end_offsets,
    generate_log,
    publish,
)
from .sigkill_replay import KillPlan, clean_replay, replay_under_sigkill

pytestmark = pytest.mark.integration

EVENTS = 50_000
MIN_KILLS_MID_REPLAY = 10


@pytest.fixture
def reference_db_url(_redis_databases: _Databases) -> str:
    """A second empty database, for the clean replay."""
    return _redis_databases.take()


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

    plan = KillPlan(cycles=16, seed=5, batch_events=300, step=1 / 16)
    killed = await replay_under_sigkill(chancery_env, ends, tmp_path / "projector.log", plan)
    clean_version, clean_dump = await clean_replay(chancery_env, reference_db_url)

    assert len(killed.mid_replay(total)) >= MIN_KILLS_MID_REPLAY, killed.kills
    assert clean_version == killed.version == 1
    assert diff_dumps(killed.dump, clean_dump) == []
    events = [p.event for p in log]
    assert day_count(killed.dump) == effects_count(events)
    assert_matches_domain(killed.dump, events)
    assert "Traceback" not in killed.log
