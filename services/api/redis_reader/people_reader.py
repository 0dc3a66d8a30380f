"""People, trips and visits on Redis: what the projector keeps of each person and trip.

A person's partition holds their appointments (`person`), the index of their trips (`trips`:
trip key -> the order string of the trip's first event), each trip's folded state and its
events; a country's visits index (per partition, a lexicographic sorted set) points at the
trips whose legs go there or set out from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from chancery import keyspace
from chancery.contract import Event, decode_event
from chancery.domain import Trip
from chancery.domain.itineraries import trip_payload
from services.api.ranges import lex_bounds
from services.api.reader import Page, PersonRecord, ReadResult, Snapshot, VisitEntry, VisitQuery

from .event_reader import EventReader
from .merged_pages import merged_page
from .round_trips import Commands, RoundTrips, field_map
from .served_version import Layout, ServedVersion


class _Trip(NamedTuple):
    """A trip in a person's index: where it is kept, and when it was first heard of."""

    partition: int
    key: str  # the trip key
    first: str  # the order string of its first event


class PeopleReader:
    def __init__(self, round_trips: RoundTrips, served: ServedVersion, events: EventReader) -> None:
        self._round_trips = round_trips
        self._served = served
        self._events = events

    async def trips(self, person_id: str) -> ReadResult[list[Trip]]:
        index, snapshot = await self._trip_index(person_id)
        layout = self._served.layout_for(snapshot)
        states = await self._trip_states(layout, [(t.partition, t.key) for t in index])
        return ReadResult(
            [states[(t.partition, t.key)] for t in index if (t.partition, t.key) in states],
            snapshot,
        )

    async def trip_history(
        self, person_id: str, known_at: datetime | None
    ) -> ReadResult[list[Event]]:
        index, snapshot = await self._trip_index(person_id)
        layout = self._served.layout_for(snapshot)
        events: list[Event] = []
        if index:
            # each trip's events, as the log holds them (retracted ones are not kept there)
            replies = await self._round_trips.send(
                tuple(("HVALS", layout.spaces[t.partition].trip_events(t.key)) for t in index)
            )
            events = [decode_event(raw) for reply in replies for raw in reply]

        def concerns(event: Event) -> bool:
            data = trip_payload(event)
            return data is not None and data.traveller.id == person_id

        events = await self._events.with_retracted(layout, events, known_at, concerns)
        return ReadResult(events, snapshot)

    async def visits(self, query: VisitQuery) -> ReadResult[Page[VisitEntry]]:
        direction = query.direction

        def accept(member: str) -> bool:
            return direction is None or keyspace.visit_member_direction(member) == direction

        snapshot, layout = await self._served.snapshot_and_layout()
        lo, hi = lex_bounds(query.start, query.end, query.after, descending=False)
        found, more = await merged_page(
            self._round_trips,
            [s.visits(query.country) for s in layout.spaces],
            lo=lo,
            hi=hi,
            descending=False,
            limit=query.limit,
            accept=accept,
        )
        items = [(p, keyspace.decode_visit_member(m.encode())) for p, m in found]
        states = await self._trip_states(
            layout, list(dict.fromkeys((p, v.trip_key) for p, v in items))
        )
        entries = [
            VisitEntry(
                member=member,
                sort_key=v.sort_key,
                trip_key=v.trip_key,
                country=v.country,
                direction="to" if v.direction == "to" else "from",
                trip=states.get((p, v.trip_key)),
            )
            for (p, v), (_, member) in zip(items, found, strict=True)
        ]
        return ReadResult(Page(entries, more), snapshot)

    async def person(self, person_id: str) -> ReadResult[PersonRecord]:
        def commands(layout: Layout) -> Commands:
            return tuple(("HGETALL", space.person(person_id)) for space in layout.spaces)

        replies, snapshot, _ = await self._served.read(commands)
        # The person hash holds each appointment as the log's event JSON.
        appointments = [decode_event(raw) for reply in replies for raw in field_map(reply).values()]
        trips = await self.trips(person_id)
        return ReadResult(
            PersonRecord(appointments=appointments, trips=trips.value),
            snapshot.later(trips.snapshot),
        )

    async def _trip_index(self, person_id: str) -> tuple[list[_Trip], Snapshot]:
        """The person's trips, in the order they were first heard of."""

        def commands(layout: Layout) -> Commands:
            return tuple(("HGETALL", space.person_trips(person_id)) for space in layout.spaces)

        replies, snapshot, _ = await self._served.read(commands)
        index = [
            _Trip(p, key.decode(), first.decode())
            for p, reply in enumerate(replies)
            for key, first in field_map(reply).items()
        ]
        index.sort(key=lambda trip: (trip.first, trip.key))
        return index, snapshot

    async def _trip_states(
        self, layout: Layout, keyed: Sequence[tuple[int, str]]
    ) -> dict[tuple[int, str], Trip]:
        if not keyed:
            return {}
        replies = await self._round_trips.send(
            tuple(("GET", layout.spaces[p].trip_state(tk)) for p, tk in keyed)
        )
        return {
            item: keyspace.decode_trip(raw)
            for item, raw in zip(keyed, replies, strict=True)
            if raw is not None
        }
