"""The stream of applied events on Redis: each partition's stream, read forward with XREAD.

The projector appends an entry (id `<offset>-1`) for every event it applies, in the same
atomic step; the entry's id names its event: the event stored at that place in the
partition's `events` hash (the copy kept, with its type and actors).
Streams are capped (MAXLEN ~), so a resume point may be older than what a stream keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.exceptions import ResponseError

from chancery import keyspace
from chancery.domain import actors_of
from services.api.reader import NotReadyError, StreamBatch, StreamEntry, StreamGoneError

from .event_reader import EventReader
from .round_trips import RoundTrips, field_map
from .served_version import ServedVersion


class StreamReader:
    def __init__(self, round_trips: RoundTrips, served: ServedVersion, events: EventReader) -> None:
        self._round_trips = round_trips
        self._served = served
        self._events = events

    async def stream_retained(self, after: Mapping[int, int]) -> None:
        layout = await self._served.layout()
        wanted = [(p, o) for p, o in after.items() if p < len(layout.spaces)]
        if not wanted:
            return
        replies = await self._round_trips.send(
            tuple(("XINFO", "STREAM", layout.spaces[p].stream) for p, _ in wanted),
            raise_on_error=False,
        )
        for (p, offset), reply in zip(wanted, replies, strict=True):
            if isinstance(reply, ResponseError):
                continue  # no stream yet: nothing was trimmed
            retained_from = _retained_from(field_map(reply))
            if retained_from is not None and offset + 1 < retained_from:
                raise StreamGoneError(p, offset, retained_from)

    async def stream_read(
        self, after: Mapping[int, int | None], *, block_ms: int, count: int
    ) -> StreamBatch:
        layout = await self._served.layout()
        partitions = {space.stream.encode(): space.partition for space in layout.spaces}
        streams = {
            space.stream: (
                keyspace.stream_id(offset)
                if (offset := after.get(space.partition)) is not None
                else "0-0"
            )
            for space in layout.spaces
        }
        replies = await self._round_trips.read_streams(
            streams, count=count, block_ms=max(1, block_ms)
        )
        read: list[tuple[int, int]] = []
        for name, items in replies:
            p = partitions[name if isinstance(name, bytes) else name.encode()]
            read.extend((p, keyspace.offset_of_stream_id(entry_id)) for entry_id, _ in items)
        # An entry names its event by its own id: the event's place in the partition.
        stored = await self._events.load(layout, read) if read else {}
        entries: list[StreamEntry] = []
        for p, place in read:
            item = stored.get((p, place))
            if item is None:  # written with its entry: gone only with the version's keys
                raise NotReadyError(layout.version, "missing")
            entries.append(
                StreamEntry(
                    partition=p,
                    offset=place,
                    type=item.event.type,
                    actors=actors_of(item.event),
                    raw=item.raw,
                )
            )
        return StreamBatch(entries)


def _retained_from(info: dict[bytes, Any]) -> int | None:
    """The first offset a trimmed stream still holds; None if nothing was ever trimmed.

    Trimming (MAXLEN) removes from the head: when fewer entries remain than were added,
    everything before the first remaining entry may be gone.
    """
    added = int(info.get(b"entries-added") or 0)
    length = int(info.get(b"length") or 0)
    if added <= length:
        return None
    if length == 0:
        return keyspace.offset_of_stream_id(info[b"last-generated-id"]) + 1
    first = info.get(b"recorded-first-entry-id")
    if first is None:
        return None
    return keyspace.offset_of_stream_id(first)
