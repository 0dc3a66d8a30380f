"""`RedisReadModelReader`: the `ReadModelReader` port on Redis, one reader per read model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from redis.asyncio import Redis

from chancery.contract import Event
from chancery.domain import PairLedger, Trip
from chancery.domain.relations import Pair
from chancery.positions import Position
from services.api.reader import (
    Page,
    PersonRecord,
    ReadResult,
    Snapshot,
    StoredEvent,
    StreamBatch,
    TimelineEntry,
    TimelineQuery,
    VisitEntry,
    VisitQuery,
)

from .event_reader import EventReader
from .people_reader import PeopleReader
from .relation_reader import RelationReader
from .relation_scripts import CHECK_SCRIPT, SHARE_SCRIPT
from .round_trips import RedisRoundTrips, RoundTrips
from .served_version import ServedVersion
from .stream_reader import StreamReader
from .timeline_reader import MERGE_SCRIPT, TimelineReader

SCRIPTS = (SHARE_SCRIPT, CHECK_SCRIPT, MERGE_SCRIPT)
"""The Lua scripts the readers call (a `RoundTrips` loads them at start)."""


class RedisReadModelReader:
    def __init__(
        self,
        redis: Redis | None = None,
        blocking: Redis | None = None,
        *,
        topic: str,
        round_trips: RoundTrips | None = None,
    ) -> None:
        """`redis`: the client whose connections reads hold (best without a socket timeout:
        see held_connections.py); `blocking`: the client stream reads and waits block on (a
        pool of its own, so waits never starve reads). `round_trips` instead of the two: any
        other way to Redis (a Redis Cluster: `ClusterRoundTrips`, or a test's), which must
        load `SCRIPTS`."""
        if round_trips is None:
            if redis is None or blocking is None:
                raise ValueError("give the two clients of one server, or round_trips")
            round_trips = RedisRoundTrips(redis, blocking, scripts=SCRIPTS)
        self._round_trips = round_trips
        self.served = ServedVersion(self._round_trips, topic)
        self.events = EventReader(self._round_trips, self.served)
        self.relations = RelationReader(self._round_trips, self.served, self.events)
        self.timelines = TimelineReader(self._round_trips, self.served, self.events)
        self.people = PeopleReader(self._round_trips, self.served, self.events)
        self.stream = StreamReader(self._round_trips, self.served, self.events)

    async def start(self) -> None:
        await self._round_trips.load_scripts()

    # --- versions ----------------------------------------------------------------------------

    @property
    def topic(self) -> str:
        return self.served.topic

    async def snapshot(self) -> Snapshot:
        return await self.served.snapshot()

    async def wait_for(
        self, position: Position, timeout_s: float, *, known: Snapshot | None = None
    ) -> Snapshot:
        return await self.served.wait_for(position, timeout_s, known=known)

    # --- relations ---------------------------------------------------------------------------

    async def pair_ledgers(
        self, pairs: Sequence[Pair], reference: date
    ) -> ReadResult[Mapping[Pair, PairLedger]]:
        return await self.relations.pair_ledgers(pairs, reference)

    async def pair_history(self, pair: Pair, known_at: datetime) -> ReadResult[list[Event]]:
        return await self.relations.pair_history(pair, known_at)

    async def partners(self, country: str) -> ReadResult[dict[str, int]]:
        return await self.relations.partners(country)

    # --- timelines ---------------------------------------------------------------------------

    async def timeline(self, query: TimelineQuery) -> ReadResult[Page[TimelineEntry]]:
        return await self.timelines.timeline(query)

    # --- people, trips and visits ------------------------------------------------------------

    async def trips(self, person_id: str) -> ReadResult[list[Trip]]:
        return await self.people.trips(person_id)

    async def trip_history(
        self, person_id: str, known_at: datetime | None
    ) -> ReadResult[list[Event]]:
        return await self.people.trip_history(person_id, known_at)

    async def visits(self, query: VisitQuery) -> ReadResult[Page[VisitEntry]]:
        return await self.people.visits(query)

    async def person(self, person_id: str) -> ReadResult[PersonRecord]:
        return await self.people.person(person_id)

    # --- events ------------------------------------------------------------------------------

    async def events_by_id(self, event_id: str) -> ReadResult[list[StoredEvent]]:
        return await self.events.events_by_id(event_id)

    # --- the stream of applied events --------------------------------------------------------

    async def stream_retained(self, after: Mapping[int, int]) -> None:
        await self.stream.stream_retained(after)

    async def stream_read(
        self, after: Mapping[int, int | None], *, block_ms: int, count: int
    ) -> StreamBatch:
        return await self.stream.stream_read(after, block_ms=block_ms, count=count)
