"""The adapters' own promises: merged Redis calls behave like separate ones; records land on
the partition `send()` would pick."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import pytest
from aiokafka.partitioner import DefaultPartitioner
from redis.typing import EncodableT

from chancery.keyspace import IdempotencyRecord
from services.ingest.idempotency import (
    Claim,
    CoalescingIdempotencyStore,
    IdempotencyUnavailableError,
)
from services.ingest.publisher import default_partition
from tests.twins.ingest import InMemoryIdempotencyStore

pytestmark = pytest.mark.unit


def claim(key: str, nonce: str) -> Claim:
    return Claim.of(
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


async def test_claims_and_completions_of_concurrent_requests_share_rounds() -> None:
    inner = InMemoryIdempotencyStore()
    store = CoalescingIdempotencyStore(inner)
    first = [claim(f"{i:032x}", "first") for i in range(4)]
    await store.claim(first)
    rounds = inner.rounds
    later = [claim(f"{i + 100:032x}", "later") for i in range(4)]

    done = [(c, c.record.done(partition=0, offset=n)) for n, c in enumerate(first)]
    claimed, *_ = await asyncio.gather(store.claim(later), *(store.complete([d]) for d in done))

    assert claimed == [None] * 4
    assert inner.rounds - rounds <= 2  # the first caller's round, then everyone else's
    assert all(inner.records[c.event_key].state == "done" for c in first)


async def test_a_claim_of_an_identity_completed_in_the_same_round_finds_it_done() -> None:
    inner = InMemoryIdempotencyStore()
    store = CoalescingIdempotencyStore(inner)
    ours = claim("f" * 32, "ours")
    await store.claim([ours])
    blocker = store.claim([claim("0" * 32, "x")])  # in flight: the next two share a round
    done = ours.record.done(partition=2, offset=7)

    _, _, (found,) = await asyncio.gather(
        blocker, store.complete([(ours, done)]), store.claim([claim("f" * 32, "again")])
    )

    assert found == done


async def test_complete_only_replaces_our_own_claim() -> None:
    store = InMemoryIdempotencyStore()
    ours, theirs = claim("e" * 32, "ours"), claim("e" * 32, "theirs")
    await store.claim([theirs])
    done = ours.record.done(partition=1, offset=2)

    await store.complete([(ours, done)])

    assert store.records[ours.event_key] == theirs.record


@pytest.mark.parametrize("partitions", [1, 6, 12])
def test_records_are_partitioned_like_aiokafka_send(partitions: int) -> None:
    keys = [b"CHN|USA", b"li-hui", b"RUS|UKR", b"", b"proposal-42", "ÇÑ".encode()]
    for key in keys:
        expected = DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))
        assert default_partition(key, partitions) == expected


def test_an_idempotency_record_is_stored_as_one_short_line() -> None:
    pending = IdempotencyRecord(
        digest="d" * 32, partition_key="CHN|USA", state="pending", claim="0123456789abcdef"
    )
    done = pending.done(partition=3, offset=1234567890123)
    assert pending.encode() == b"P" + b"d" * 32 + b" 0123456789abcdef CHN|USA"
    assert done.encode() == b"D" + b"d" * 32 + b" 3:1234567890123 CHN|USA"
    for record in (pending, done):
        assert IdempotencyRecord.decode(record.encode()) == record
    # The partition key is the rest of the line: any character survives.
    odd = IdempotencyRecord(
        digest="x", partition_key='é" \\\n', state="done", partition=0, offset=0
    )
    assert IdempotencyRecord.decode(odd.encode()) == odd


@pytest.mark.parametrize(
    "record",
    [
        IdempotencyRecord(digest="d d", partition_key="k", state="done", partition=0, offset=0),
        IdempotencyRecord(digest="d", partition_key="k", state="pending", claim="a b"),
        IdempotencyRecord(digest="d", partition_key="k", state="pending"),
        IdempotencyRecord(digest="d", partition_key="k", state="done", partition=1),
        IdempotencyRecord(digest="d", partition_key="k", state="lost", claim="c"),
        IdempotencyRecord(digest="d", partition_key="", state="pending", claim="c"),
        IdempotencyRecord(digest="d", partition_key="", state="done", partition=0, offset=0),
        IdempotencyRecord(digest="d", partition_key="k", state="done", partition=-1, offset=2),
        IdempotencyRecord(digest="d", partition_key="k", state="done", partition=True, offset=2),
    ],
)
def test_a_record_that_would_not_read_back_is_never_written(record: IdempotencyRecord) -> None:
    with pytest.raises(ValueError, match="not a storable idempotency record"):
        record.encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"P",
        b"Pd c",
        b"Pd c ",
        b"Xd c k",
        b"Dd 1 k",
        b"Dd 1:x k",
        b"Dd -1:2 k",
        b"P c k",
        b"Pd  k",
    ],
)
def test_a_malformed_stored_record_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a stored idempotency record"):
        IdempotencyRecord.decode(raw)


def test_records_stored_as_json_by_the_previous_format_still_read() -> None:
    """Ingest stored records as JSON before (a pydantic model's `model_dump_json`); those
    written just before an upgrade live one idempotency window and must still read."""
    assert IdempotencyRecord.decode(
        b'{"digest":"dddddddddddddddddddddddddddddddd","partition_key":"CHN|USA",'
        b'"state":"pending","claim":"0123456789abcdef"}'
    ) == IdempotencyRecord("d" * 32, "CHN|USA", "pending", "0123456789abcdef")
    assert IdempotencyRecord.decode(
        b'{"digest":"dd","partition_key":"CHN|USA","state":"done","partition":3,"offset":12}'
    ) == IdempotencyRecord("dd", "CHN|USA", "done", None, 3, 12)
    with pytest.raises(ValueError, match="extra"):
        IdempotencyRecord.decode(b'{"digest":"x","partition_key":"k","state":"done","x":1}')


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "a" * 40, 2, "chancery:ingest:v1:idem:ab", "k2", 10_000, b'{"x":1}', b""),
        ("SET", "k", "é ü", "PX", 1.5),
        ("GET", memoryview(b"key")),
        ("SCRIPT LOAD", "return 1"),  # two words: redis-py's own packing
    ],
)
def test_native_packing_writes_what_redis_py_writes(args: tuple[EncodableT, ...]) -> None:
    from redis.asyncio.connection import Connection

    from services.platform.redis import NativePacking

    class Packing(NativePacking, Connection):
        pass

    assert b"".join(Packing().pack_command(*args)) == b"".join(Connection().pack_command(*args))


class DyingProducer:
    """The part of AIOKafkaProducer the publisher uses, for a producer whose sender dies of
    `fatal`: the records pending then fail with it (`fail_pending`), and every later send
    raises it, as aiokafka does. Without `fatal`, each record is written at the next offset."""

    def __init__(self, fatal: Exception | None = None, *, fail_pending: bool = False) -> None:
        self.fatal = fatal
        self.fail_pending = fail_pending
        self.started = asyncio.Event()
        self.stopped = False
        self.offset = 0

    async def start(self) -> None:
        self.started.set()

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, **record: object) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.fatal is not None and not self.fail_pending:
            raise self.fatal
        if self.fatal is not None:
            future.set_exception(self.fatal)
            self.fail_pending = False  # the sender is dead now: later sends raise
        else:
            future.set_result(RecordMetadata(topic, 0, self.offset))
            self.offset += 1
        return future


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int


@pytest.mark.parametrize("fail_pending", [True, False], ids=["pending-send", "later-send"])
async def test_a_producer_whose_sender_died_is_replaced(fail_pending: bool) -> None:
    from aiokafka.errors import OutOfOrderSequenceNumber

    from services.ingest.publisher import KafkaEventPublisher, NotWritten, OutgoingRecord, Written

    dying = DyingProducer(OutOfOrderSequenceNumber(), fail_pending=fail_pending)
    healthy = DyingProducer()
    made = iter([dying, healthy])
    publisher = KafkaEventPublisher(lambda: next(made), "chancery.events")
    record = OutgoingRecord(key=b"CHN|USA", value=b"{}")
    await publisher.start()
    try:
        await asyncio.wait_for(dying.started.wait(), 5)

        (refused,) = await publisher.publish([record], timeout_s=5)
        assert isinstance(refused, NotWritten)
        await asyncio.wait_for(healthy.started.wait(), 5)
        (written,) = await publisher.publish([record], timeout_s=5)
    finally:
        await publisher.stop()

    assert written == Written(0, 0)
    assert dying.stopped
