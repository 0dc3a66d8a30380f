"""Events by id: every stored event with that id (ids are unique per source, not globally),
whether it still counts, and where it sits in the log."""

from __future__ import annotations

from .reader import EventReads, ReadResult, StoredEvent


async def events_by_id(
    reader: EventReads, event_id: str, source: str | None
) -> ReadResult[list[StoredEvent]]:
    reading = await reader.events_by_id(event_id)
    found = [s for s in reading.value if source is None or s.event.source == source]
    return ReadResult(found, reading.snapshot)
