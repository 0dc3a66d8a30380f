"""Fill Redis with the real projection, without Kafka: for the reader contract tests.

`sync(redis, twin)` takes the in-memory twin's log (what Kafka would hold, with the same
partitions and offsets) and runs every record the twin has applied through the projector's
own `ReadModelProjection` and `RedisReadModelWriter` (plan, then the atomic apply), in
batches, so Redis ends up exactly as the live projector would leave it.
"""

from __future__ import annotations

from redis.asyncio import Redis

from chancery.keyspace import PartitionSpace
from services.projector.plan import WritePlan
from services.projector.projection import ReadModelProjection
from services.projector.records import LogRecord
from services.projector.store import Batch, RedisReadModelWriter
from tests.twins.read_models import InMemoryReadModelReader

BATCH = 7  # small, so multi-batch paths (and retractions across batches) are exercised


async def sync(redis: Redis, twin: InMemoryReadModelReader, *, partitions: int) -> int:
    """Apply what the twin has applied and Redis has not; mark the version ready."""
    writer = RedisReadModelWriter(redis, topic=twin.topic)
    projection = ReadModelProjection(redis)
    version = await writer.ensure_active_version(partitions)
    applied = (await twin.snapshot()).applied
    by_partition: dict[int, list[LogRecord]] = {p: [] for p in range(partitions)}
    for p, offset, event, raw in twin.log():
        if offset <= applied.get(p, -1):
            key = (event.partitionkey or "").encode() or None
            by_partition[p].append(LogRecord(p, offset, key, raw, event, event.key))
    for p, records in by_partition.items():
        space = PartitionSpace(version, p)
        (stored,) = await writer.stored_offsets([space])
        fresh = [r for r in records if stored is None or r.offset > stored]
        if not fresh:
            await writer.mark_caught_up(space, (stored if stored is not None else -1) + 1)
            continue
        for start in range(0, len(fresh), BATCH):
            batch = fresh[start : start + BATCH]
            (plan,) = await projection.plan([(space, batch)])
            assert isinstance(plan, WritePlan), plan
            (outcome,) = await writer.apply(
                [Batch(space, stored, batch[-1].offset, fresh[-1].offset + 1, plan)]
            )
            assert outcome.applied, outcome
            stored = batch[-1].offset
    assert await writer.mark_ready_if_caught_up(version, partitions)
    return version
