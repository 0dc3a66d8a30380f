"""The Redis read models equal the pure domain folds, for logs with every complication.

Each log is seeded and reproducible: events of every type, duplicates that got past ingest,
retractions (before their target, of other retractions), late events and whole trips. The
projector replays it (the rebuild path, in this process); the per-partition read models,
merged as the API merges them, must equal `build_ledger(effective(events))`, `fold_trip`
and the timelines of the same events.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from redis.asyncio import Redis

from chancery.settings import ProjectorSettings
from services.cli.local import free_port
from services.projector.app import run_rebuild

from .projector_helpers import (
    assert_matches_domain,
    canonical_dump,
    day_count,
    effects_count,
    generate_log,
    publish,
)

pytestmark = pytest.mark.integration


def projector_settings(env: Mapping[str, str], **more: Any) -> ProjectorSettings:
    return ProjectorSettings(
        kafka_bootstrap_servers=env["CHANCERY_KAFKA_BOOTSTRAP_SERVERS"],
        topic=env["CHANCERY_TOPIC"],
        dead_letter_topic=env["CHANCERY_DEAD_LETTER_TOPIC"],
        redis_url=env["CHANCERY_REDIS_URL"],
        redis_cluster=env.get("CHANCERY_REDIS_CLUSTER", "").lower() == "true",
        group_id=f"projector-{uuid.uuid4().hex[:8]}",
        status_port=free_port(),
        log_json=False,
        **more,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_read_models_equal_the_domain_folds(
    chancery_env: dict[str, str], kafka_bootstrap: str, kafka_topic: str, seed: int
) -> None:
    log = generate_log(3000, seed=seed, duplicates=0.04, retractions=0.05)
    await publish(kafka_bootstrap, kafka_topic, log)
    settings = projector_settings(chancery_env, max_batch_events=300)

    version, old = await run_rebuild(settings, keep_old=True)

    assert old is None
    redis = Redis.from_url(chancery_env["CHANCERY_REDIS_URL"])
    try:
        dump = await canonical_dump(redis, version)
    finally:
        await redis.aclose()
    events = [p.event for p in log]
    assert_matches_domain(dump, events)
    assert day_count(dump) == effects_count(events)
