"""Events by id: every stored event with that id (ids are unique per source, not globally),
whether it still counts, and where it sits in the log."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .reader import EventReads, ReadResult, StoredEvent
from .timeline_views import LoggedEvent


class EventsBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    id: str
    matches: list[LoggedEvent] = Field(
        description="One per source that used this id; `retracted` marks those that no "
        "longer count. Retractions themselves are events too and are found by their own id."
    )


async def events_by_id(
    reader: EventReads, event_id: str, source: str | None
) -> ReadResult[list[StoredEvent]]:
    reading = await reader.events_by_id(event_id)
    found = [s for s in reading.value if source is None or s.event.source == source]
    return ReadResult(found, reading.snapshot)
