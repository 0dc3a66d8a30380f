"""A replay under SIGKILL, and the clean replay it must equal: shared by the integration
test (50,000 events) and the reliability scenario (100,000 events, at least 20 kills).

`python -m services.projector` replays a topic as a real process and is killed with SIGKILL
at random moments: while it starts, connects, joins its group and seeks (now and then), or
once it applies batches, mid-fetch, mid-plan or mid-script (mostly). Each run lives a random
time once it applies, adapted as the replay goes so that the kills spread over the whole log
however fast the projector is. Each kill is followed by a restart, mostly in a fresh consumer
group, now and then in the same one (so a restarted member also waits out its dead
predecessor's session). A last run goes to the end and stops gracefully.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis, RedisCluster

from services.projector.app import run_rebuild

from .projector_helpers import (
    ProjectorProcess,
    active_version,
    canonical_dump,
    redis_of,
    stored_offsets,
    wait_until_applied,
)
from .test_projector_domain import projector_settings


@dataclass(frozen=True)
class KillPlan:
    cycles: int  # kills at most; the replay may end sooner
    seed: int
    batch_events: int = 250
    same_group_every: int = 6  # every n-th restart rejoins the group of the run it replaces
    starting_share: float = 0.2  # of the kills, those while the process starts
    step: float = 1 / 32  # of the log, what one run should apply on average before its kill


@dataclass(frozen=True)
class Kill:
    moment: str  # "starting" or "applying"
    applied: int  # events applied when it was killed


@dataclass(frozen=True)
class KilledReplay:
    version: int
    dump: dict[str, object]
    kills: list[Kill]
    log: str

    def mid_replay(self, total: int) -> list[Kill]:
        return [k for k in self.kills if 0 < k.applied < total]


async def applied(redis: Redis | RedisCluster, partitions: int) -> int:
    """Events the active version has applied, by its stored offsets."""
    version = await active_version(redis)
    if version is None:
        return 0
    offsets = await stored_offsets(redis, version, partitions)
    return sum((o if o is not None else -1) + 1 for o in offsets)


async def replay_under_sigkill(
    env: Mapping[str, str], ends: Mapping[int, int], log_path: Path, plan: KillPlan
) -> KilledReplay:
    total = sum(ends.values())
    redis = redis_of(env)
    projector = ProjectorProcess(
        env, log_path, CHANCERY_PROJECTOR_BATCH_EVENTS=str(plan.batch_events)
    )
    rng = random.Random(plan.seed)
    kills: list[Kill] = []
    group = f"sigkill-{uuid.uuid4().hex[:8]}"
    longest = 0.5  # seconds a run may live once it applies
    try:
        for cycle in range(plan.cycles):
            before = await applied(redis, len(ends))
            if before >= total:
                break
            if cycle % plan.same_group_every:
                group = f"sigkill-{uuid.uuid4().hex[:8]}"
            projector.start(CHANCERY_GROUP_ID=group)
            if rng.random() < plan.starting_share:
                moment = "starting"
                await asyncio.sleep(rng.uniform(0.0, 2.5))
            else:
                moment = "applying"
                async with asyncio.timeout(90):
                    while await applied(redis, len(ends)) <= before:
                        assert projector.alive(), projector.log()[-2000:]
                        await asyncio.sleep(0.01)
                await asyncio.sleep(rng.uniform(0.0, longest))
            projector.kill()
            kills.append(Kill(moment, await applied(redis, len(ends))))
            if moment == "applying":
                went_far = kills[-1].applied - before > total * plan.step
                longest = min(longest * (0.7 if went_far else 1.3), 2.0)
        # The last run goes to the end, then stops gracefully. (If the kills already took it
        # to the end, it must still be up before SIGTERM.)
        projector.start(CHANCERY_GROUP_ID=f"sigkill-{uuid.uuid4().hex[:8]}")
        await projector.wait_serving()
        version = await wait_until_applied(redis, ends, timeout_s=600)
        assert projector.stop() == 0, projector.log()[-3000:]
        dump = await canonical_dump(redis, version)
    finally:
        projector.kill()
        await redis.aclose()
    return KilledReplay(version, dump, kills, projector.log())


async def clean_replay(env: Mapping[str, str], redis_url: str) -> tuple[int, dict[str, object]]:
    """`chancery rebuild`'s code, uninterrupted, into another database (of a single Redis
    server): (version, dump)."""
    settings = projector_settings(
        {**env, "CHANCERY_REDIS_URL": redis_url, "CHANCERY_REDIS_CLUSTER": "false"}
    )
    version, _ = await run_rebuild(settings, keep_old=True)
    clean = Redis.from_url(redis_url)
    try:
        return version, await canonical_dump(clean, version)
    finally:
        await clean.aclose()
