"""The atomic step itself: the Lua script never stops half-way, and is fenced; and the
writer's in-memory twin (tests/twins) does what the Redis writer does.

Redis does not roll back a script that fails after it has written, so the script must not
fail once it writes: a malformed plan, a stale offset and an out-of-memory server each
leave Redis exactly as it was; a stream that is (by some accident) ahead of the offset
skips the entry instead of failing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from chancery import keyspace
from chancery.keyspace import PartitionSpace
from services.projector.plan import WritePlan
from services.projector.projection import PipelinedReads, ReadModelProjection
from services.projector.records import LogRecord
from services.projector.store import (
    Batch,
    ReadModelWriter,
    RedisReadModelWriter,
    with_native_packing,
)
from tests.twins.read_model_writer import InMemoryReadModelWriter, MemoryReadModels

from .projector_helpers import VOLATILE_FIELDS, canonical_dump, generate_log

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
    plan.xadd(offset)
    plan.store_new(SPACE.events, [b"{}"])
    plan.hincrby(SPACE.relation("CHN|USA", "days"), "2023-01-01:n", 1)
    plan.zadd_lex(SPACE.pair_timeline("CHN|USA"), ["a", "b"])
    return plan


async def test_a_batch_moves_the_offset_with_its_writes(
    writer: RedisReadModelWriter, redis: Redis
) -> None:
    [outcome] = await writer.apply([Batch(SPACE, None, 7, 10, a_plan(7))])
    assert outcome.applied
    assert await redis.get(SPACE.offset) == b"7"
    assert await redis.xrange(SPACE.stream) == [(b"7-1", {b"p": b""})]
    assert await redis.hget(SPACE.events, "7") == b"{}"
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
        ("I", 4.5, "f", 1),  # a key index that is no index
        ("H", 4, 2, "f"),  # fewer arguments than announced
        ("Z", 4, 0),  # an empty variadic command
        ("H", 4, 2, "f", 2),  # a value naming a blob the call does not carry
        ("T", 4, "x"),  # a string's value that is no blob
        ("S", 4, 1, ["m"]),  # an argument that is neither a string nor a number
        ("X", 4, 2, 8, 9),  # new events without a stored value each
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


async def test_values_and_members_reach_redis_exactly_as_planned(
    writer: RedisReadModelWriter, redis: Redis
) -> None:
    """The operations travel as JSON, byte values beside them: neither changes a byte."""
    awkward = 'quote " backslash \\ newline \n tab \t nul \x00 é 東京 😀 ' + "\u2028"
    blob = bytes(range(256)) + b'"\\'
    plan = a_plan(7)
    plan.hset(SPACE.person("p"), {awkward: blob, "text": awkward, "7": "8"})
    plan.sadd(SPACE.retracted, [awkward, "12", "-1"])
    plan.set(SPACE.trip_state("t.1"), blob)

    [outcome] = await writer.apply([Batch(SPACE, None, 7, 10, plan)])

    assert outcome.applied
    assert await redis.hgetall(SPACE.person("p")) == {
        awkward.encode(): blob,
        b"text": awkward.encode(),
        b"7": b"8",
    }
    assert await redis.smembers(SPACE.retracted) == {awkward.encode(), b"12", b"-1"}
    assert await redis.get(SPACE.trip_state("t.1")) == blob
    assert await redis.hget(SPACE.events, "7") == b"{}"


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


# --- the twin ---------------------------------------------------------------------------------


async def _a_writers_life(
    writer: ReadModelWriter, reads: PipelinedReads, remove_offset: Callable[[str], Any]
) -> list[object]:
    """What a writer answers, from a new store through a fold of a log in batches (the fold
    reading through `reads`), a fenced step, and a stream left ahead of a removed offset."""
    log = generate_log(300, seed=17)
    records = [
        LogRecord(0, i, p.key.encode(), p.value, p.event, p.event.key) for i, p in enumerate(log)
    ]
    projection = ReadModelProjection(reads)
    answers: list[object] = [await writer.active_version()]
    version = await writer.ensure_active_version(2)
    spaces = [PartitionSpace(version, p) for p in range(2)]
    answers += [version, await writer.version_info(version), await writer.stored_offsets(spaces)]
    await writer.mark_caught_up(spaces[1], 0)  # a partition with nothing to apply
    stored = None
    for start in range(0, len(records), 37):
        batch = records[start : start + 37]
        [plan] = await projection.plan([(spaces[0], batch)])
        assert isinstance(plan, WritePlan), plan
        answers.append(
            await writer.apply([Batch(spaces[0], stored, batch[-1].offset, len(records), plan)])
        )
        stored = batch[-1].offset
        answers.append(await writer.mark_ready_if_caught_up(version, 2))
    answers.append(await writer.apply([Batch(spaces[0], 3, 9, len(records), WritePlan())]))
    await remove_offset(spaces[0].offset)
    a_stream_entry = WritePlan()
    a_stream_entry.xadd(5)
    a_stream_entry.store_new(spaces[0].events, [b"{}"])
    answers.append(await writer.apply([Batch(spaces[0], None, 5, len(records), a_stream_entry)]))
    answers += [await writer.stored_offsets(spaces), await writer.version_info(version)]
    return answers


def _dump(models: MemoryReadModels, version: int) -> dict[str, object]:
    """The twin's keys of `version` as `canonical_dump` shows Redis's."""
    prefix = keyspace.version_prefix(version)
    out: dict[str, object] = {}
    for key, value in models.strings.items():
        out[key] = value
    for key, fields in models.hashes.items():
        out[key] = sorted((f.encode(), v) for f, v in fields.items() if f not in VOLATILE_FIELDS)
    for key, members in models.zsets.items():
        out[key] = [(m.encode(), 0.0) for m in sorted(members, key=str.encode)]
    for key, members in models.sets.items():
        out[key] = sorted(m.encode() for m in members)
    for key, entries in models.streams.items():
        out[key] = [
            (i.encode(), sorted((f.encode(), v) for f, v in fields.items()))
            for i, fields in entries
        ]
    empty: tuple[object, ...] = ([], b"")
    return {
        k.removeprefix(prefix): v for k, v in out.items() if k.startswith(prefix) and v not in empty
    }


async def test_the_in_memory_writer_answers_and_writes_what_redis_does(
    writer: RedisReadModelWriter, redis: Redis
) -> None:
    twin = InMemoryReadModelWriter(topic="t")

    async def remove_from_redis(key: str) -> None:
        await redis.delete(key)

    async def remove_from_twin(key: str) -> None:
        twin.models.strings.pop(key)

    in_redis = await _a_writers_life(writer, redis, remove_from_redis)
    in_memory = await _a_writers_life(twin, twin.models, remove_from_twin)

    assert in_memory == in_redis
    version = await writer.active_version()
    assert version is not None
    assert _dump(twin.models, version) == await canonical_dump(redis, version)
