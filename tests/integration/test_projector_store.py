"""The atomic step itself: the Lua script never stops half-way, and is fenced.

Redis does not roll back a script that fails after it has written, so the script must not
fail once it writes: a malformed plan, a stale offset and an out-of-memory server each
leave Redis exactly as it was; a stream that is (by some accident) ahead of the offset
skips the entry instead of failing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from chancery import keyspace
from chancery.keyspace import PartitionSpace
from services.projector.plan import WritePlan
from services.projector.store import Batch, RedisReadModelWriter, with_native_packing

from .projector_helpers import canonical_dump

pytestmark = pytest.mark.integration

SPACE = PartitionSpace(1, 0)


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = with_native_packing(Redis.from_url(redis_db_url))
    yield client
    await client.aclose()


@pytest.fixture
def writer(redis: Redis) -> RedisReadModelWriter:
    return RedisReadModelWriter(redis, topic="t", stream_max_len=1000)


def a_plan(offset: int) -> WritePlan:
    plan = WritePlan()
    plan.xadd(offset, "k1", "diplomacy.event.coded", "CHN USA")
    plan.hset(SPACE.events, {"k1": b"%d {}" % offset})
    plan.hincrby(SPACE.relation("CHN|USA", "days"), "2023-01-01:n", 1)
    plan.zadd_lex(SPACE.pair_timeline("CHN|USA"), ["a", "b"])
    return plan


async def test_a_batch_moves_the_offset_with_its_writes(
    writer: RedisReadModelWriter, redis: Redis
) -> None:
    [outcome] = await writer.apply([Batch(SPACE, None, 7, 10, a_plan(7))])
    assert outcome.applied
    assert await redis.get(SPACE.offset) == b"7"
    assert await redis.xrange(SPACE.stream) == [
        (b"7-1", {b"k": b"k1", b"t": b"diplomacy.event.coded", b"a": b"CHN USA"})
    ]
    assert await redis.hget(SPACE.relation("CHN|USA", "days"), "2023-01-01:n") == b"1"


async def test_a_fenced_batch_writes_nothing(writer: RedisReadModelWriter, redis: Redis) -> None:
    await writer.apply([Batch(SPACE, None, 7, 10, a_plan(7))])
    before = await canonical_dump(redis, 1)

    [outcome] = await writer.apply([Batch(SPACE, 3, 9, 10, a_plan(9))])

    assert not outcome.applied
    assert outcome.stored == 7
    assert await canonical_dump(redis, 1) == before


async def test_a_malformed_plan_is_refused_before_any_write(
    writer: RedisReadModelWriter, redis: Redis
) -> None:
    plan = a_plan(7)
    plan.ops.extend(("?", 4, "x"))  # an operation the script does not know, at the very end

    with pytest.raises(ResponseError, match="plan: unknown operation"):
        await writer.apply([Batch(SPACE, None, 7, 10, plan)])

    assert await canonical_dump(redis, 1) == {}


@pytest.mark.parametrize(
    "ops",
    [
        ("I", 99, "f", 1),  # a key index beyond KEYS
        ("H", 4, 2, "f"),  # fewer arguments than announced
        ("Z", 4, 0),  # an empty variadic command
    ],
)
async def test_every_malformed_operation_is_refused_whole(
    writer: RedisReadModelWriter, redis: Redis, ops: tuple[Any, ...]
) -> None:
    plan = a_plan(7)
    plan.ops.extend(ops)
    with pytest.raises(ResponseError, match="plan:"):
        await writer.apply([Batch(SPACE, None, 7, 10, plan)])
    assert await canonical_dump(redis, 1) == {}


async def test_a_stream_ahead_of_the_offset_skips_the_entry_instead_of_failing(
    writer: RedisReadModelWriter, redis: Redis
) -> None:
    await writer.apply([Batch(SPACE, None, 10, 11, a_plan(10))])
    await redis.delete(SPACE.offset)  # by hand: the stream now holds 10-1, the offset nothing

    [outcome] = await writer.apply([Batch(SPACE, None, 4, 11, a_plan(4))])

    assert outcome.applied
    assert outcome.stream_skipped == 1
    entries: Any = await redis.xrange(SPACE.stream)
    assert [entry_id for entry_id, _ in entries] == [b"10-1"]
    assert await redis.get(SPACE.offset) == b"4"


async def test_an_out_of_memory_server_refuses_the_script_whole(
    writer: RedisReadModelWriter, redis: Redis
) -> None:
    await writer.apply([Batch(SPACE, None, 7, 10, a_plan(7))])
    before = await canonical_dump(redis, 1)
    config: Any = await redis.config_get("maxmemory")
    await redis.config_set("maxmemory", 1)
    try:
        with pytest.raises(ResponseError, match="used memory > 'maxmemory'"):
            await writer.apply([Batch(SPACE, 7, 9, 10, a_plan(9))])
    finally:
        await redis.config_set("maxmemory", config["maxmemory"])
    assert await canonical_dump(redis, 1) == before


def test_the_longest_trip_keys_are_valid_keys() -> None:
    # A person id and a trip id may each be a 64-character slug.
    trip = keyspace.trip_key("a" * 64, "b" * 64)
    assert SPACE.trip_state(trip).endswith(trip)
    assert SPACE.trip_events(trip).endswith(f"{trip}:events")
