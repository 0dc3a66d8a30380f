"""Ingest's idempotency store against the real Redis: the group commit's round (complete,
then claim, in one script) does what the two scripts do one after the other."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from chancery import keyspace
from chancery.keyspace import IdempotencyRecord
from services.ingest.idempotency import Claim, CoalescingIdempotencyStore, RedisIdempotencyStore
from services.platform.redis import redis_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_db_url, client_name="test", native_packing=True)
    yield client
    await client.aclose()


def claim(n: int, nonce: str) -> Claim:
    record = IdempotencyRecord.pending(f"{n:032x}", "CHN|USA", nonce)
    return Claim.of(f"{n:032x}", record)


async def test_a_round_completes_then_claims(redis: Redis) -> None:
    store = RedisIdempotencyStore(redis, ttl_s=600, pending_ttl_ms=10_000)
    ours = [claim(n, "ours") for n in range(3)]
    assert await store.claim(ours) == [None] * 3
    theirs = claim(1, "theirs")
    await redis.set(keyspace.idempotency(theirs.event_key), theirs.stored)  # taken over
    done = [(c, c.record.done(partition=4, offset=n)) for n, c in enumerate(ours)]
    new = [claim(n, "new") for n in (0, 7)]

    answers = await store.complete_then_claim(done, new)

    # Completed where the claim was still ours; key 0 is then found done, key 7 claimed.
    assert answers == [done[0][1], None]
    stored = await store.lookup([c.event_key for c in (*ours, new[1])])
    assert stored == [done[0][1], theirs.record, done[2][1], new[1].record]
    assert 0 < await redis.ttl(keyspace.idempotency(ours[0].event_key)) <= 600
    assert 0 < await redis.pttl(keyspace.idempotency(new[1].event_key)) <= 10_000


async def test_the_coalescing_store_uses_the_rounds(redis: Redis) -> None:
    store = CoalescingIdempotencyStore(
        RedisIdempotencyStore(redis, ttl_s=600, pending_ttl_ms=10_000)
    )
    first = [claim(n, "a") for n in range(5)]
    assert await store.claim(first) == [None] * 5

    await store.complete([(c, c.record.done(partition=0, offset=n)) for n, c in enumerate(first)])

    again = await store.claim([claim(n, "b") for n in range(5)])
    assert [r.state if r else None for r in again] == ["done"] * 5
