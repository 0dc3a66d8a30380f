"""Stored events: by id, by place in their partition, and the retracted ones a history needs.

Each partition keeps the events it applied in its `events` hash (place -> the event,
compressed, and the offset of the copy kept when that is not its place: see
chancery.keyspace), the places of each id in `ids`, the places of those retracted in
`retracted`, and for each retracted event the place of the retraction that took effect
(`retractions`, by the retracted event's key): a retraction and its target share a
partition. The other readers load their events through this one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from chancery import keyspace
from chancery.contract import Event, EventRetracted, decode_event
from services.api.reader import ReadResult, StoredEvent

from .round_trips import Commands, RoundTrips
from .served_version import Layout, ServedVersion

Placed = tuple[int, int]
"""(partition, place): where an event is stored."""


class EventReader:
    def __init__(self, round_trips: RoundTrips, served: ServedVersion) -> None:
        self._round_trips = round_trips
        self._served = served

    async def events_by_id(self, event_id: str) -> ReadResult[list[StoredEvent]]:
        id_field = keyspace.event_id_field(event_id)

        def commands(layout: Layout) -> Commands:
            return tuple(("HGET", space.event_ids, id_field) for space in layout.spaces)

        replies, snapshot, layout = await self._served.read(commands)
        placed = [
            (p, place)
            for p, reply in enumerate(replies)
            if reply
            for place in keyspace.decode_places(reply)
        ]
        stored = await self.load(layout, placed)
        found = [stored[at] for at in placed if at in stored]
        found.sort(key=lambda s: (s.event.source, s.partition, s.offset))
        return ReadResult(found, snapshot)

    async def load(self, layout: Layout, placed: Sequence[Placed]) -> dict[Placed, StoredEvent]:
        """(partition, place) -> stored event, with its retracted flag."""
        by_partition: dict[int, list[int]] = {}
        for p, place in placed:
            by_partition.setdefault(p, []).append(place)
        if not by_partition:
            return {}
        order = sorted(by_partition)
        commands: list[tuple[str, ...]] = []
        for p in order:
            space = layout.spaces[p]
            fields = [keyspace.place_field(place) for place in by_partition[p]]
            commands.append(("HMGET", space.events, *fields))
            commands.append(("SMISMEMBER", space.retracted, *fields))
        replies = await self._round_trips.send(tuple(commands))
        out: dict[Placed, StoredEvent] = {}
        for i, p in enumerate(order):
            for place, value, flag in zip(
                by_partition[p], replies[2 * i], replies[2 * i + 1], strict=True
            ):
                if value is None:
                    continue
                offset, raw = keyspace.decode_stored_event(value, place)
                out[(p, place)] = StoredEvent(decode_event(raw), raw, p, offset, bool(flag))
        return out

    async def with_retracted(
        self,
        layout: Layout,
        events: list[Event],
        known_at: datetime | None,
        concerns: Callable[[Event], bool],
    ) -> list[Event]:
        """`events`; with `known_at`, also every retracted event that `concerns` the query
        and was recorded by then, with its retraction."""
        if known_at is None:
            return events
        replies = await self._round_trips.send(
            tuple(("SMEMBERS", space.retracted) for space in layout.spaces)
        )
        retracted = [(p, int(place)) for p, reply in enumerate(replies) for place in reply]
        stored = await self.load(layout, retracted)
        targets = [
            item
            for item in stored.values()
            if not isinstance(item.event, EventRetracted)
            and concerns(item.event)
            and item.event.recordedtime is not None
            and item.event.recordedtime <= known_at
        ]
        if not targets:
            return events
        places = await self._round_trips.send(
            tuple(
                ("HGET", layout.spaces[item.partition].retractions, item.event.key)
                for item in targets
            )
        )
        pairs = [
            (item, (item.partition, int(place)))
            for item, place in zip(targets, places, strict=True)
            if place is not None  # written with the `retracted` entry, in one atomic step
        ]
        retractions = await self.load(layout, [at for _, at in pairs])
        out = list(events)
        for item, at in pairs:
            retraction = retractions.get(at)
            if retraction is not None:
                out.extend((item.event, retraction.event))
        return out

    async def load_events(self, layout: Layout, placed: Sequence[Placed]) -> list[Event]:
        """The events at these places (those still stored), in that order."""
        stored = await self.load(layout, placed)
        return [stored[at].event for at in placed if at in stored]
