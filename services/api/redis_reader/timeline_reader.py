"""The timeline read model on Redis: a pair's or a country's effective events, in pages.

Each partition keeps its share of a timeline as a lexicographic sorted set of `<order
string> <type>` members; a page is their merge (merged_pages.py), filtered by type and
bounded by day, and its events are loaded from the partitions that hold them.
"""

from __future__ import annotations

from chancery import keyspace
from chancery.keyspace import PartitionSpace
from services.api.ranges import lex_bounds
from services.api.reader import Page, ReadResult, TimelineEntry, TimelineQuery

from .event_reader import EventReader
from .merged_pages import merged_page
from .round_trips import RoundTrips
from .served_version import ServedVersion


class TimelineReader:
    def __init__(self, round_trips: RoundTrips, served: ServedVersion, events: EventReader) -> None:
        self._round_trips = round_trips
        self._served = served
        self._events = events

    async def timeline(self, query: TimelineQuery) -> ReadResult[Page[TimelineEntry]]:
        def key_of(space: PartitionSpace) -> str:
            if query.kind == "pair":
                return space.pair_timeline(query.key)
            return space.country_timeline(query.key)

        types = query.types

        def accept(member: str) -> bool:
            return types is None or keyspace.timeline_member_type(member) in types

        snapshot, layout = await self._served.snapshot_and_layout()
        lo, hi = lex_bounds(query.start, query.end, query.after, query.descending)
        found, more = await merged_page(
            self._round_trips,
            [key_of(s) for s in layout.spaces],
            lo=lo,
            hi=hi,
            descending=query.descending,
            limit=query.limit,
            accept=accept,
        )
        keyed = [(p, keyspace.decode_timeline_member(m.encode()).event_key) for p, m in found]
        stored = await self._events.load(layout, keyed)
        items = [
            TimelineEntry(member, stored[key])
            for (_, member), (_, key) in zip(found, keyed, strict=True)
            if key in stored
        ]
        return ReadResult(Page(items, more), snapshot)
