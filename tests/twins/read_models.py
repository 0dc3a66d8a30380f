"""The in-memory twin of the API's `RedisReadModelReader`: a log of events, answered by the
pure folds.

It holds what the projector would have consumed (per partition, in offset order) and answers
every question of the `ReadModelReader` port with the domain code directly: `build_ledger`,
`fold_itinerary`, `effective`, `timeline_refs`. Unit tests of the routes use it; the contract
test in tests/e2e runs the same questions against it and against Redis filled by the real
projection, which keeps both honest.

Test controls: `append` (the projector applies at once) or `append(..., apply=False)` and
`apply_all()` (a lagging projector), `state` ("ready", "building", "missing").
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from chancery import keyspace
from chancery.contract import EnvoyAppointed, Event, encode_event, partition_key, stamp
from chancery.domain import (
    PairLedger,
    Trip,
    actors_of,
    build_ledger,
    earlier_copy,
    effective,
    fold_itinerary,
    fold_trip,
    order_string,
    retracted_keys,
    timeline_refs,
)
from chancery.domain.itineraries import trip_payload
from chancery.domain.relations import Pair
from chancery.positions import Position
from services.api.ranges import in_range, lex_bounds
from services.api.reader import (
    NotReadyError,
    Page,
    PartitionProgress,
    PersonRecord,
    PositionTimeoutError,
    ReadResult,
    Snapshot,
    StoredEvent,
    StreamBatch,
    StreamEntry,
    StreamGoneError,
    TimelineEntry,
    TimelineQuery,
    VisitEntry,
    VisitQuery,
)

VERSION = 1
RECORDED_AT = datetime.fromisoformat("2023-05-12T12:00:00+00:00")
"""When an event appended without a recording time was recorded: the article's day."""


@dataclass(frozen=True)
class _Record:
    partition: int
    offset: int
    event: Event
    raw: bytes


class InMemoryReadModelReader:
    def __init__(self, *, topic: str = "chancery.events", partitions: int = 6) -> None:
        self._topic = topic
        self._log: list[list[_Record]] = [[] for _ in range(partitions)]
        self._applied: list[int | None] = [None] * partitions
        self._trimmed: dict[int, int] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self.state = "ready"

    @property
    def topic(self) -> str:
        return self._topic

    # --- test controls -----------------------------------------------------------------------

    def _key_of(self, event: Event) -> str:
        """The record key ingest gives: a retraction takes its target's."""
        key = partition_key(event) or event.partitionkey
        if key is not None:
            return key
        target = getattr(event.data, "target", None)
        for log in self._log:
            for record in log:
                if target is not None and record.event.key == target.key:
                    return record.event.partitionkey or self._key_of(record.event)
        return "unknown-target"

    def partition_of(self, event: Event) -> int:
        return zlib.crc32(self._key_of(event).encode()) % len(self._log)

    def append(
        self, event: Event, *, recorded_at: datetime | None = None, apply: bool = True
    ) -> Position:
        """Put `event` in the log (stamped if it is not yet); applied at once unless `apply`
        is False. Returns its position."""
        if event.recordedtime is None:
            at = recorded_at or RECORDED_AT
            event = stamp(event, recorded_at=at, partition_key=self._key_of(event))
        p = self.partition_of(event)
        offset = len(self._log[p])
        self._log[p].append(_Record(p, offset, event, encode_event(event)))
        if apply:
            self._applied[p] = offset
            self._notify()
        return Position.at(self._topic, p, offset)

    def extend(
        self, events: Iterable[Event], *, recorded_at: datetime | None = None, apply: bool = True
    ) -> Position:
        position = Position(self._topic)
        for event in events:
            position = position.merge(self.append(event, recorded_at=recorded_at, apply=apply))
        return position

    def apply_all(self) -> None:
        for p, log in enumerate(self._log):
            if log:
                self._applied[p] = len(log) - 1
        self._notify()

    def log(self) -> list[tuple[int, int, Event, bytes]]:
        """(partition, offset, event, raw) of every record, applied or not, per partition."""
        return [(r.partition, r.offset, r.event, r.raw) for log in self._log for r in log]

    def log_events(self) -> list[Event]:
        """The events of the log (as stamped), in partition then offset order."""
        return [event for _, _, event, _ in self.log()]

    def trim_stream(self, partition: int, up_to: int) -> None:
        """Pretend the partition's stream dropped every entry up to offset `up_to`."""
        self._trimmed[partition] = up_to

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop running: nobody can be waiting
        task = loop.create_task(wake())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- what is applied ---------------------------------------------------------------------

    def _kept(self) -> dict[str, _Record]:
        """The applied record of each identity as the projector keeps it (its dedupe): the
        first to arrive, or a later copy recorded earlier (`earlier_copy`), in the order the
        identities first arrived."""
        kept: dict[str, _Record] = {}
        for p, log in enumerate(self._log):
            applied = self._applied[p]
            for record in log[: (applied + 1) if applied is not None else 0]:
                first = kept.get(record.event.key)
                if first is None or earlier_copy(record.event, first.event):
                    kept[record.event.key] = record
        return kept

    def _records(self) -> list[_Record]:
        return list(self._kept().values())

    def _events(self) -> list[Event]:
        return [r.event for r in self._records()]

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            VERSION,
            self._topic,
            tuple(
                PartitionProgress(p, self._applied[p], len(log)) for p, log in enumerate(self._log)
            ),
        )

    async def snapshot(self) -> Snapshot:
        if self.state != "ready":
            progress = self._snapshot().progress if self.state == "building" else ()
            raise NotReadyError(VERSION if self.state == "building" else None, self.state, progress)
        return self._snapshot()

    async def wait_for(
        self, position: Position, timeout_s: float, *, known: Snapshot | None = None
    ) -> Snapshot:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout_s
        while True:
            snapshot = await self.snapshot()
            if snapshot.covers(position):
                return snapshot
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PositionTimeoutError(position, snapshot, loop.time() - started)
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    # --- relations -----------------------------------------------------------------------------

    async def pair_ledgers(
        self, pairs: Sequence[Pair], reference: date
    ) -> ReadResult[Mapping[Pair, PairLedger]]:
        snapshot = await self.snapshot()
        ledger = build_ledger(effective(self._events()))
        return ReadResult({pair: ledger.pair(pair) for pair in pairs}, snapshot)

    async def pair_history(self, pair: Pair, known_at: datetime) -> ReadResult[list[Event]]:
        snapshot = await self.snapshot()
        return ReadResult(self._events(), snapshot)

    async def partners(self, country: str) -> ReadResult[dict[str, int]]:
        snapshot = await self.snapshot()
        ledger = build_ledger(effective(self._events()))
        counts: dict[str, int] = {}
        for pair in ledger.pairs:
            if country in (pair.first, pair.second):
                n = sum(b.count for b in ledger.pair(pair).days.values())
                if n:
                    counts[pair.other(country)] = n
        return ReadResult(counts, snapshot)

    # --- timelines -----------------------------------------------------------------------------

    async def timeline(self, query: TimelineQuery) -> ReadResult[Page[TimelineEntry]]:
        snapshot = await self.snapshot()
        records = {r.event.key: r for r in self._records()}
        members: dict[str, _Record] = {}
        for event in effective(r.event for r in records.values()):
            refs = timeline_refs(event)
            keys = [p.key for p in refs.pairs] if query.kind == "pair" else list(refs.countries)
            if query.key in keys:
                members[keyspace.timeline_member(order_string(event), event.type)] = records[
                    event.key
                ]
        types = query.types
        chosen = _page(
            members,
            lex_bounds(query.start, query.end, query.after, query.descending),
            query.descending,
            query.limit,
            lambda m: types is None or keyspace.timeline_member_type(m) in types,
        )
        items = [TimelineEntry(m, _stored(members[m])) for m in chosen.items]
        return ReadResult(Page(items, chosen.more), snapshot)

    # --- people, trips and visits ------------------------------------------------------------

    def _all_trips(self) -> dict[str, Trip]:
        by_trip: dict[str, list[Event]] = {}
        for event in effective(self._events()):
            data = trip_payload(event)
            if data is not None:
                key = keyspace.trip_key(data.traveller.id, data.trip_id)
                by_trip.setdefault(key, []).append(event)
        return {key: fold_trip(events) for key, events in by_trip.items()}

    async def trips(self, person_id: str) -> ReadResult[list[Trip]]:
        snapshot = await self.snapshot()
        return ReadResult(list(fold_itinerary(person_id, self._events()).trips), snapshot)

    async def trip_history(
        self, person_id: str, known_at: datetime | None
    ) -> ReadResult[list[Event]]:
        snapshot = await self.snapshot()
        return ReadResult(self._events(), snapshot)

    async def visits(self, query: VisitQuery) -> ReadResult[Page[VisitEntry]]:
        snapshot = await self.snapshot()
        members: dict[str, tuple[str, Trip]] = {}
        for tk, trip in self._all_trips().items():
            for country, member in keyspace.visit_members(tk, trip):
                if country == query.country:
                    members[member] = (tk, trip)
        direction = query.direction
        chosen = _page(
            members,
            lex_bounds(query.start, query.end, query.after, descending=False),
            False,
            query.limit,
            lambda m: direction is None or keyspace.visit_member_direction(m) == direction,
        )
        entries = []
        for member in chosen.items:
            item = keyspace.decode_visit_member(member.encode())
            entries.append(
                VisitEntry(
                    member=member,
                    sort_key=item.sort_key,
                    trip_key=item.trip_key,
                    country=item.country,
                    direction="to" if item.direction == "to" else "from",
                    trip=members[member][1],
                )
            )
        return ReadResult(Page(entries, chosen.more), snapshot)

    async def person(self, person_id: str) -> ReadResult[PersonRecord]:
        snapshot = await self.snapshot()
        appointments: list[Event] = [
            e
            for e in effective(self._events())
            if isinstance(e, EnvoyAppointed) and e.data.person.id == person_id
        ]
        trips = list(fold_itinerary(person_id, self._events()).trips)
        return ReadResult(PersonRecord(appointments, trips), snapshot)

    # --- events --------------------------------------------------------------------------------

    async def events_by_id(self, event_id: str) -> ReadResult[list[StoredEvent]]:
        snapshot = await self.snapshot()
        records = self._records()
        retracted = retracted_keys(r.event for r in records)
        found = [
            _stored(r, retracted=r.event.key in retracted)
            for r in records
            if r.event.id == event_id
        ]
        found.sort(key=lambda s: (s.event.source, s.partition, s.offset))
        return ReadResult(found, snapshot)

    # --- the stream ----------------------------------------------------------------------------

    async def stream_retained(self, after: Mapping[int, int]) -> None:
        for p, offset in after.items():
            trimmed = self._trimmed.get(p)
            if trimmed is not None and trimmed > offset:
                raise StreamGoneError(p, offset, trimmed + 1)

    def _stream_after(self, after: Mapping[int, int | None], count: int) -> list[StreamEntry]:
        """An entry where each identity was first applied, naming the copy kept (the body a
        Redis stream entry is read with comes from the events hash)."""
        kept = self._kept()
        seen: set[str] = set()
        entries: list[StreamEntry] = []
        for p, log in enumerate(self._log):
            applied = self._applied[p]
            start = after.get(p)
            taken = 0
            for record in log[: (applied + 1) if applied is not None else 0]:
                if record.event.key in seen:
                    continue
                seen.add(record.event.key)
                if (start is None or record.offset > start) and taken < count:
                    entries.append(
                        StreamEntry(
                            p,
                            record.offset,
                            record.event.type,
                            actors_of(record.event),
                            kept[record.event.key].raw,
                        )
                    )
                    taken += 1
        return entries

    async def stream_read(
        self, after: Mapping[int, int | None], *, block_ms: int, count: int
    ) -> StreamBatch:
        await self.snapshot()
        entries = self._stream_after(after, count)
        if entries:
            return StreamBatch(entries)
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait(), block_ms / 1000)
            except TimeoutError:
                return StreamBatch([])
        return StreamBatch(self._stream_after(after, count))


# --- shared with nothing else: the twin's own helpers --------------------------------------------


def _stored(record: _Record, *, retracted: bool = False) -> StoredEvent:
    return StoredEvent(record.event, record.raw, record.partition, record.offset, retracted)


def _page(
    members: Iterable[str],
    bounds: tuple[str, str],
    descending: bool,
    limit: int,
    accept: Callable[[str], bool],
) -> Page[str]:
    lo, hi = bounds
    chosen = [m for m in sorted(members, reverse=descending) if in_range(m, lo, hi) and accept(m)]
    return Page(chosen[:limit], len(chosen) > limit)
