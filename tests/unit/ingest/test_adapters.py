"""The adapters' own promises: merged Redis calls behave like separate ones; records land on
the partition `send()` would pick."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.partitioner import DefaultPartitioner

from chancery.keyspace import IdempotencyRecord
from services.ingest.idempotency import (
    Claim,
    CoalescingIdempotencyStore,
    IdempotencyUnavailableError,
    InMemoryIdempotencyStore,
)
from services.ingest.publisher import default_partition

pytestmark = pytest.mark.unit


def claim(key: str, nonce: str) -> Claim:
    return Claim(
        key,
        IdempotencyRecord(digest="d" * 32, partition_key="CHN|USA", state="pending", claim=nonce),
    )


async def test_concurrent_claims_of_one_key_are_granted_once() -> None:
    inner = InMemoryIdempotencyStore()
    store = CoalescingIdempotencyStore(inner)
    key = "a" * 32

    results = await asyncio.gather(*(store.claim([claim(key, f"n{i}")]) for i in range(10)))

    granted = [r for (r,) in results if r is None]
    assert len(granted) == 1
    assert all(r is not None and r.claim == "n0" for (r,) in results[1:])


async def test_merged_calls_give_each_caller_its_own_results() -> None:
    inner = InMemoryIdempotencyStore()
    store = CoalescingIdempotencyStore(inner, max_items=3)
    calls = [[claim(f"{i:032x}", "n"), claim(f"{i + 100:032x}", "n")] for i in range(5)]

    results = await asyncio.gather(*(store.claim(c) for c in calls))

    assert results == [[None, None]] * 5
    found = await asyncio.gather(*(store.lookup([c[1].event_key]) for c in calls))
    assert [f[0].claim if f[0] else None for f in found] == ["n"] * 5


async def test_a_failing_merged_call_fails_every_caller() -> None:
    store = CoalescingIdempotencyStore(InMemoryIdempotencyStore(available=False))
    results = await asyncio.gather(
        store.claim([claim("b" * 32, "x")]),
        store.claim([claim("c" * 32, "y")]),
        return_exceptions=True,
    )
    assert all(isinstance(r, IdempotencyUnavailableError) for r in results)


async def test_complete_only_replaces_our_own_claim() -> None:
    store = InMemoryIdempotencyStore()
    ours, theirs = claim("e" * 32, "ours"), claim("e" * 32, "theirs")
    await store.claim([theirs])
    done = ours.record.model_copy(
        update={"state": "done", "claim": None, "partition": 1, "offset": 2}
    )

    await store.complete([(ours, done)])

    assert store.records[ours.event_key] == theirs.record


@pytest.mark.parametrize("partitions", [1, 6, 12])
def test_records_are_partitioned_like_aiokafka_send(partitions: int) -> None:
    keys = [b"CHN|USA", b"li-hui", b"RUS|UKR", b"", b"proposal-42", "ÇÑ".encode()]
    for key in keys:
        expected = DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))
        assert default_partition(key, partitions) == expected
