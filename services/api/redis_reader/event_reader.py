"""Stored events: by id, by key in their partition, and the retracted ones a history needs.

Each partition keeps the events it applied in its `events` hash (event key -> the stored
event: its offset and the log's JSON), the keys of those retracted in `retracted`, and for
each retracted event the retraction that took effect (`retractions`): a retraction and its
target share a partition. The other readers load their events through this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from chancery import keyspace
from chancery.contract import Event, EventRetracted, decode_event
from chancery.keyspace import PartitionSpace
from services.api.reader import ReadResult, StoredEvent

from .round_trips import Commands, RoundTrips
from .served_version import Layout, ServedVersion

logger = logging.getLogger(__name__)


def _event_of(stored: bytes) -> Event:
    return decode_event(keyspace.decode_stored_event(stored)[1])


class EventReader:
    def __init__(self, round_trips: RoundTrips, served: ServedVersion) -> None:
        self._round_trips = round_trips
        self._served = served

    async def events_by_id(self, event_id: str) -> ReadResult[list[StoredEvent]]:
        id_field = keyspace.event_id_field(event_id)

        def commands(layout: Layout) -> Commands:
            return tuple(("HGET", space.event_ids, id_field) for space in layout.spaces)

        replies, snapshot, layout = await self._served.read(commands)
        keyed = [
            (p, key)
            for p, reply in enumerate(replies)
            if reply
            for key in keyspace.decode_event_keys(reply)
        ]
        stored = await self.load(layout, keyed)
        found = [stored[key] for _, key in keyed if key in stored]
        found.sort(key=lambda s: (s.event.source, s.partition, s.offset))
        return ReadResult(found, snapshot)

    async def load(
        self, layout: Layout, keyed: Sequence[tuple[int, str]]
    ) -> dict[str, StoredEvent]:
        """event_key -> stored event, from each key's own partition, with its retracted flag."""
        by_partition: dict[int, list[str]] = {}
        for p, key in keyed:
            by_partition.setdefault(p, []).append(key)
        if not by_partition:
            return {}
        order = sorted(by_partition)
        commands: list[tuple[str, ...]] = []
        for p in order:
            space = layout.spaces[p]
            commands.append(("HMGET", space.events, *by_partition[p]))
            commands.append(("SMISMEMBER", space.retracted, *by_partition[p]))
        replies = await self._round_trips.send(tuple(commands))
        out: dict[str, StoredEvent] = {}
        for i, p in enumerate(order):
            for key, raw, flag in zip(
                by_partition[p], replies[2 * i], replies[2 * i + 1], strict=True
            ):
                if raw is None:
                    continue
                offset, body = keyspace.decode_stored_event(raw)
                out[key] = StoredEvent(decode_event(body), body, p, offset, bool(flag))
        return out

    async def with_retracted(
        self,
        layout: Layout,
        keys: Sequence[Sequence[str]],
        known_at: datetime | None,
        concerns: Callable[[Event], bool],
    ) -> list[Event]:
        """The events under `keys` (per partition); with `known_at`, also every retracted
        event that `concerns` the query and was recorded by then, with its retraction."""
        commands: list[tuple[str, ...]] = []
        for p, space in enumerate(layout.spaces):
            commands.append(("HMGET", space.events, *keys[p]) if keys[p] else ("ECHO", ""))
            if known_at is not None:
                commands.append(("SMEMBERS", space.retracted))
        replies = await self._round_trips.send(tuple(commands))
        step = 2 if known_at is not None else 1
        events: list[Event] = []
        retracted: list[tuple[int, str]] = []
        for p in range(len(layout.spaces)):
            if keys[p]:
                events.extend(_event_of(raw) for raw in replies[step * p] if raw is not None)
            if known_at is not None:
                retracted.extend((p, k.decode()) for k in replies[step * p + 1])
        if known_at is None or not retracted:
            return events
        stored = await self.load(layout, retracted)
        for key, item in stored.items():
            event = item.event
            if isinstance(event, EventRetracted) or not concerns(event):
                continue
            if event.recordedtime is None or event.recordedtime > known_at:
                continue  # not known at `known_at` anyway
            retraction = await self._retraction_of(layout.spaces[item.partition], event)
            if retraction is None:
                logger.warning(
                    "the retraction of %s is no longer in the stream; leaving the event out",
                    key,
                )
                continue
            events.extend((event, retraction))
        return events

    async def _retraction_of(self, space: PartitionSpace, target: Event) -> Event | None:
        """The retraction of `target`: the projector maps each retracted event to the
        retraction that took effect, in the partition they share (`retractions`)."""
        (key,) = await self._round_trips.send((("HGET", space.retractions, target.key),))
        if key is None:
            return None
        (raw,) = await self._round_trips.send((("HGET", space.events, key),))
        return _event_of(raw) if isinstance(raw, bytes) else None
