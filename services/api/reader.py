"""The API's port onto the read models: what a query needs, whatever stores them.

One port, `ReadModelReader`, made of one Protocol per read model (`VersionReads`,
`RelationReads`, `TimelineReads`, `PeopleReads`, `EventReads`, `StreamReads`): the
composition root wires one reader, and each answer module asks only for the part it reads.
`RedisReadModelReader` (redis_reader/) reads what the projector wrote, one reader class per
read model behind it; `InMemoryReadModelReader` (tests/twins/read_models.py) answers the
same questions from a list of events with the pure domain code, for unit tests of the
routes and as the reference the Redis reader is checked against
(tests/e2e/test_reader_contract.py).

Every read returns a `ReadResult`: the value and the `Snapshot` it reflects (read model
version, applied offset and high watermark of every partition), taken in the same round
trip as the data, so the position a response reports is never older than its data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Generic, Literal, Protocol, TypeVar

from chancery.answers import Direction
from chancery.contract import Event
from chancery.domain import PairLedger, Trip
from chancery.domain.relations import Pair
from chancery.positions import Position

T = TypeVar("T")

TimelineKind = Literal["pair", "country"]


# --- where a read stands ----------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionProgress:
    partition: int
    applied: int | None  # last applied offset; None before the first
    high_watermark: int  # offsets in the log (the next offset to be written)

    @property
    def lag(self) -> int:
        return max(
            0, self.high_watermark - ((self.applied if self.applied is not None else -1) + 1)
        )


@dataclass(frozen=True)
class Snapshot:
    """What one read reflects: the served version and how far each partition is applied.

    Immutable, so what is derived from it is computed once (a reader hands out the same
    snapshot while nothing moved, and every answer it serves reuses these).
    """

    version: int
    topic: str
    progress: tuple[PartitionProgress, ...]

    @property
    def partitions(self) -> int:
        return len(self.progress)

    @property
    def applied(self) -> dict[int, int]:
        return {p.partition: p.applied for p in self.progress if p.applied is not None}

    @cached_property
    def state(self) -> tuple[int, tuple[int | None, ...]]:
        """The version and each partition's applied offset: what the read models hold."""
        return self.version, tuple(p.applied for p in self.progress)

    @cached_property
    def position(self) -> Position:
        """The applied offsets as a position token (partitions with none applied left out)."""
        return Position(self.topic, self.applied)

    @cached_property
    def token(self) -> str:
        """`position` as its token."""
        return self.position.token()

    @cached_property
    def lag(self) -> int:
        """Events in the log not yet applied, over every partition."""
        return sum(p.lag for p in self.progress)

    def covers(self, position: Position) -> bool:
        return position.is_covered_by(self.applied)

    def later(self, other: Snapshot) -> Snapshot:
        """The later of two snapshots of one version (per partition, the further one)."""
        if other.version != self.version:
            return other
        merged = tuple(
            a if (a.applied or -1) >= (b.applied or -1) else b
            for a, b in zip(self.progress, other.progress, strict=True)
        )
        return Snapshot(self.version, self.topic, merged)


@dataclass(frozen=True)
class ReadResult(Generic[T]):
    """What one read found, and the snapshot of the read models it was found in."""

    value: T
    snapshot: Snapshot


# --- failures a read can end in ---------------------------------------------------------------


class ReadError(Exception):
    """Base of what a reader raises; errors.py maps each to an HTTP status."""


@dataclass
class NotReadyError(ReadError):
    """No version is served, or the served one is still being built: nothing is answered."""

    version: int | None
    state: str  # "missing" | "building" | "layout" (a version of another read-model layout)
    progress: tuple[PartitionProgress, ...] = ()


@dataclass
class PositionTimeoutError(ReadError):
    """The projector did not reach the wanted position in time."""

    wanted: Position
    reached: Snapshot
    waited_s: float


@dataclass
class StreamGoneError(ReadError):
    """A resume point older than what the stream still holds (it was trimmed)."""

    partition: int
    after: int
    retained_from: int


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    """An event as the read models hold it: where it sits in the log, and whether it counts."""

    event: Event
    raw: bytes
    partition: int
    offset: int
    retracted: bool = False


@dataclass(frozen=True)
class TimelineQuery:
    """A page of a timeline. Bounds are lexicographic on the timeline member."""

    kind: TimelineKind
    key: str  # "CHN|USA" or "CHN"
    limit: int
    types: frozenset[str] | None = None
    start: date | None = None  # events starting on or after this day
    end: date | None = None  # events starting on or before this day
    after: str | None = None  # member of the last item of the previous page (exclusive)
    descending: bool = False


@dataclass(frozen=True)
class TimelineEntry:
    member: str
    stored: StoredEvent


@dataclass(frozen=True)
class VisitQuery:
    country: str
    limit: int
    start: date | None = None
    end: date | None = None
    direction: Direction | None = None  # None: both
    after: str | None = None


@dataclass(frozen=True)
class VisitEntry:
    member: str
    sort_key: str
    trip_key: str
    country: str  # the leg's destination
    direction: Direction
    trip: Trip | None  # None if the trip vanished between the two reads


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    more: bool  # another page follows the last item


@dataclass(frozen=True)
class PersonRecord:
    appointments: list[Event] = field(default_factory=list)
    trips: list[Trip] = field(default_factory=list)


@dataclass(frozen=True)
class StreamEntry:
    partition: int
    offset: int
    type: str
    actors: frozenset[str]
    raw: bytes


@dataclass(frozen=True)
class StreamBatch:
    """What one stream read brought: entries in log order per partition."""

    entries: list[StreamEntry]
    snapshot: Snapshot | None = None


class VersionReads(Protocol):
    """Which read-model version is served, and how far the projector has applied it."""

    @property
    def topic(self) -> str: ...

    async def snapshot(self) -> Snapshot:
        """The served version and its progress; raises NotReadyError if none is ready."""
        ...

    async def wait_for(
        self, position: Position, timeout_s: float, *, known: Snapshot | None = None
    ) -> Snapshot:
        """Return once `position` is applied; PositionTimeoutError after `timeout_s`.

        `known`: a snapshot just taken, so the first check needs no read.
        """
        ...


class RelationReads(Protocol):
    """The relation read model: pair ledgers, a country's partners, a pair's events."""

    async def pair_ledgers(
        self, pairs: Sequence[Pair], reference: date
    ) -> ReadResult[Mapping[Pair, PairLedger]]:
        """Each pair's ledger merged over the partitions.

        May hold only the contacts that matter on `reference` (the latest that started by
        it and the earliest after it): enough for `view(..., today=reference)` and for
        `view(..., as_of=reference)`, whose answers it must not change.
        """
        ...

    async def pair_history(self, pair: Pair, known_at: datetime) -> ReadResult[list[Event]]:
        """Every event of the pair recorded by `known_at`, retracted ones and their
        retractions included, so the fold can tell what was known then."""
        ...

    async def partners(self, country: str) -> ReadResult[dict[str, int]]:
        """Partner -> number of events of the pair."""
        ...


class TimelineReads(Protocol):
    """The timelines: a pair's or a country's effective events, in order, in pages."""

    async def timeline(self, query: TimelineQuery) -> ReadResult[Page[TimelineEntry]]: ...


class PeopleReads(Protocol):
    """People, their trips, and the visits indexed by country."""

    async def trips(self, person_id: str) -> ReadResult[list[Trip]]:
        """The person's trips as projected, ordered by when each was first heard of."""
        ...

    async def trip_history(
        self, person_id: str, known_at: datetime | None
    ) -> ReadResult[list[Event]]:
        """Every event of the person's trips (with `known_at`: also those retracted since,
        and their retractions)."""
        ...

    async def visits(self, query: VisitQuery) -> ReadResult[Page[VisitEntry]]: ...

    async def person(self, person_id: str) -> ReadResult[PersonRecord]: ...


class EventReads(Protocol):
    """Stored events, found by id."""

    async def events_by_id(self, event_id: str) -> ReadResult[list[StoredEvent]]: ...


class StreamReads(Protocol):
    """The stream of applied events, per partition, in log order."""

    async def stream_retained(self, after: Mapping[int, int]) -> None:
        """Raise StreamGoneError if resuming after these offsets would skip trimmed entries."""
        ...

    async def stream_read(
        self, after: Mapping[int, int | None], *, block_ms: int, count: int
    ) -> StreamBatch:
        """Entries after the given offsets (None: from the start), waiting up to `block_ms`."""
        ...


class ReadModelReader(
    VersionReads, RelationReads, TimelineReads, PeopleReads, EventReads, StreamReads, Protocol
):
    """Every question the API asks of the read models: the one port the app is given."""
