"""The Redis reader answers what the in-memory twin and the pure folds answer.

Generated histories of every event type (with retractions, some void) are put in the twin's
log; Redis is filled from the same log by the projector's own projection and atomic apply
(tests/e2e/projecting.py). Then, for every pair, person, country and id in the history:

- the API's relation (now, as of a day, as known at a time) equals `fold_relation` over the
  same events, both through the Redis reader and through the twin;
- timelines, pages and all, itineraries (now, as of, known at), visits, partners and events
  by id agree between Redis and the twin.

This is what makes the twin a faithful stand-in in the route tests, and the Redis reader a
faithful reader of the projector's partial, per-partition state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chancery.contract import Event, EventRetracted, TripPayload
from chancery.domain import Pair, fold_itinerary, fold_relation, pairs_of
from chancery.domain.timelines import actors_of
from services.api import people_views, relation_views
from services.api.reader import NotReadyError, ReadModelReader, StreamGoneError, TimelineQuery
from services.api.redis_reader import RedisReadModelReader
from tests.e2e.conftest import RedisReaders
from tests.e2e.projecting import sync
from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.contract.strategies import histories
from tests.unit.domain.builders import coded, meeting, retraction

pytestmark = pytest.mark.e2e

PARTITIONS = 3
TODAY = date(2023, 5, 12)
RECORDED = datetime(2023, 8, 1, tzinfo=UTC)
CONTRACT = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def pairs_in(events: Iterable[Event]) -> list[Pair]:
    return sorted({pair for event in events for pair in pairs_of(event)}, key=str)


def people_in(events: Iterable[Event]) -> list[str]:
    return sorted({e.data.traveller.id for e in events if isinstance(e.data, TripPayload)})


def actors_in(events: Iterable[Event]) -> list[str]:
    return sorted({actor for event in events for actor in actors_of(event)})


async def fill(
    readers: RedisReaders, events: list[Event], data: st.DataObject
) -> tuple[RedisReadModelReader, InMemoryReadModelReader, list[Event]]:
    """The history in log order (a retraction after its target), recorded an hour apart,
    after copies of a few of its events recorded two months later (retries that ingest
    re-stamped, in the log before their originals: the originals count); a fresh Redis
    reader (nothing held from an earlier example)."""
    redis = readers.redis
    await redis.flushdb()
    others = data.draw(st.permutations([e for e in events if not isinstance(e, EventRetracted)]))
    order = [*others, *(e for e in events if isinstance(e, EventRetracted))]
    twin = InMemoryReadModelReader(partitions=PARTITIONS)
    retried = data.draw(st.lists(st.sampled_from(others), max_size=3)) if others else []
    for copy in retried:
        twin.append(copy, recorded_at=RECORDED + timedelta(days=60))
    for i, event in enumerate(order):
        twin.append(event, recorded_at=RECORDED + timedelta(hours=i))
    await sync(redis, twin, partitions=PARTITIONS)
    return readers.reader(), twin, [event for _, _, event, _ in twin.log()]


async def whole_timeline(
    reader: ReadModelReader, kind: Any, key: str, *, limit: int, **query: Any
) -> list[str]:
    """Every member of a timeline, page by page."""
    members: list[str] = []
    after = None
    while True:
        page = await reader.timeline(TimelineQuery(kind, key, limit, after=after, **query))
        members += [entry.member for entry in page.value.items]
        if not page.value.more:
            return members
        after = page.value.items[-1].member


@CONTRACT
@given(events=histories(max_size=12), data=st.data())
async def test_relations_through_redis_equal_the_pure_fold(
    redis_readers: RedisReaders, events: list[Event], data: st.DataObject
) -> None:
    reader, twin, logged = await fill(redis_readers, events, data)
    as_of = data.draw(st.dates(date(2023, 1, 1), date(2023, 7, 31)))
    known_at = RECORDED + timedelta(hours=data.draw(st.integers(0, len(logged))), minutes=30)
    for pair in pairs_in(logged):
        cases: list[dict[str, Any]] = [{}, {"as_of": as_of}, {"known_at": known_at}]
        for when in cases:
            expected = fold_relation(pair, logged, today=TODAY, **when)
            for source in (reader, twin):
                got = await relation_views.relation(source, pair, today=TODAY, **when)
                assert got.value == expected, (type(source).__name__, pair, when)


@CONTRACT
@given(events=histories(max_size=12), data=st.data())
async def test_every_other_read_agrees_between_redis_and_the_twin(
    redis_readers: RedisReaders, events: list[Event], data: st.DataObject
) -> None:
    reader, twin, logged = await fill(redis_readers, events, data)
    limit = data.draw(st.integers(1, 4))
    window = {"start": date(2023, 3, 1), "end": date(2023, 5, 31)}
    for pair in pairs_in(logged):
        for query in ({}, {"descending": True}, window):
            assert await whole_timeline(
                reader, "pair", pair.key, limit=limit, **query
            ) == await whole_timeline(twin, "pair", pair.key, limit=limit, **query)
    for actor in actors_in(logged):
        types = frozenset({"diplomacy.meeting.held", "diplomacy.visit.announced"})
        queries: list[dict[str, Any]] = [{}, {"types": types}]
        for query in queries:
            assert await whole_timeline(
                reader, "country", actor, limit=limit, **query
            ) == await whole_timeline(twin, "country", actor, limit=limit, **query)
        assert (await reader.partners(actor)).value == (await twin.partners(actor)).value
        for direction in (None, "to", "from"):
            redis_visits = await people_views.visits(
                reader, actor, start=None, end=None, direction=direction, status=None,
                cursor=None, limit=100,
            )  # fmt: skip
            twin_visits = await people_views.visits(
                twin, actor, start=None, end=None, direction=direction, status=None,
                cursor=None, limit=100,
            )  # fmt: skip
            assert redis_visits.value == twin_visits.value
    as_of = data.draw(st.dates(date(2023, 1, 1), date(2023, 7, 31)))
    known_at = RECORDED + timedelta(hours=data.draw(st.integers(0, len(logged))), minutes=30)
    for person in people_in(logged):
        for when in ({}, {"as_of": as_of}, {"known_at": known_at}):
            expected = fold_itinerary(person, logged, **when)
            for source in (reader, twin):
                got = await people_views.itinerary(source, person, **when)
                assert got.value == expected, (type(source).__name__, person, when)
        assert (await people_views.person(reader, person)).value == (
            await people_views.person(twin, person)
        ).value
    for event_id in sorted({e.id for e in logged}):
        in_redis = (await reader.events_by_id(event_id)).value
        in_twin = (await twin.events_by_id(event_id)).value
        assert [(s.event, s.partition, s.offset, s.retracted) for s in in_redis] == [
            (s.event, s.partition, s.offset, s.retracted) for s in in_twin
        ]


async def test_positions_streams_and_rebuilds_read_from_redis(
    redis_readers: RedisReaders,
) -> None:
    """The snapshot, the stream, a trimmed stream, and a version that is not ready."""
    redis, reader = redis_readers.redis, redis_readers.reader()
    twin = InMemoryReadModelReader(partitions=PARTITIONS)
    with pytest.raises(NotReadyError) as missing:
        await reader.snapshot()
    assert missing.value.state == "missing"
    events = [meeting(f"m{i}", "2023-05-10", "CHN", "USA") for i in range(5)]
    events += [coded(f"c{i}", "2023-05-11", "IRN", "SAU", "042") for i in range(5)]
    position = twin.extend(events)
    version = await sync(redis, twin, partitions=PARTITIONS)
    snapshot = await reader.snapshot()
    assert snapshot == await twin.snapshot()
    assert snapshot.covers(position)
    assert await reader.wait_for(position, 0.1) == snapshot
    batch = await reader.stream_read({}, block_ms=10, count=100)
    assert [(e.partition, e.offset, e.raw) for e in batch.entries] == [
        (e.partition, e.offset, e.raw)
        for e in (await twin.stream_read({}, block_ms=10, count=100)).entries
    ]
    assert {e.actors for e in batch.entries} == {
        frozenset({"CHN", "USA"}),
        frozenset({"IRN", "SAU"}),
    }
    # trimmed: resuming before what the stream keeps is refused
    p = batch.entries[0].partition
    stream = f"chancery:rm:v{version}:{{p{p}}}:stream"
    await redis.xtrim(stream, maxlen=1, approximate=False)
    with pytest.raises(StreamGoneError):
        await reader.stream_retained({p: 0})
    await reader.stream_retained({p: snapshot.applied[p]})
    # a version being built is not served
    await redis.hset(f"chancery:rm:v{version}:meta", "state", "building")
    with pytest.raises(NotReadyError) as building:
        await reader.snapshot()
    assert building.value.state == "building"
    assert sum(p.high_watermark for p in building.value.progress) == len(events)


async def test_held_shares_follow_new_writes_partition_by_partition(
    redis_readers: RedisReaders,
) -> None:
    """A reader keeps decoded shares between reads; what the projector applies after is
    still seen, on the partitions it touched, and only there."""
    reader = redis_readers.reader()
    twin = InMemoryReadModelReader(partitions=PARTITIONS)
    pair = Pair.of("CHN", "USA")
    first = meeting("first", "2023-05-01", "CHN", "USA")
    twin.extend([first, coded("c1", "2023-05-02", "CHN", "USA", "042")])
    await sync(redis_readers.redis, twin, partitions=PARTITIONS)
    for as_of in (None, date(2023, 5, 1)):
        got = await relation_views.relation(reader, pair, today=TODAY, as_of=as_of)
        assert got.value == fold_relation(pair, twin.log_events(), today=TODAY, as_of=as_of)
    more = [
        meeting("second", "2023-05-03", "CHN", "USA"),
        coded("elsewhere", "2023-05-03", "FRA", "DEU", "042"),
        retraction("first-wrong", first),
    ]
    twin.extend(more)
    await sync(redis_readers.redis, twin, partitions=PARTITIONS)
    for as_of in (None, date(2023, 5, 1), date(2023, 5, 3)):
        got = await relation_views.relation(reader, pair, today=TODAY, as_of=as_of)
        assert got.value == fold_relation(pair, twin.log_events(), today=TODAY, as_of=as_of)
        assert got.snapshot == await twin.snapshot()
