"""What the client hands out: the API's own answer bodies, with typed events.

The bodies are `chancery.answers`, the very classes the API serves. Those that carry events
are parametrized here with the contract's `Event` union, so `item.event` is a typed event
(`MeetingHeld`, `VisitAnnounced`, ...), not a JSON object. Ingest's answer (`Accepted`) is
defined here: ingest keeps its own models, and tests/unit/client/test_answers.py holds the
two equal, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from chancery.answers import (
    EventsBodyOf,
    LoggedEventOf,
    RecordBodyOf,
    RecordItemOf,
    TimelineBodyOf,
)
from chancery.contract import Event


class LoggedEvent(LoggedEventOf[Event]):
    """An event as the log holds it (with `recordedtime` and `partitionkey`), and where."""


class TimelineBody(TimelineBodyOf[LoggedEvent]):
    """One page of a timeline."""


class EventsBody(EventsBodyOf[LoggedEvent]):
    """Every stored event with one id (one per source that used it)."""


class RecordItem(RecordItemOf[Event]):
    """An event of a pair's record, retracted or not, as known at a time."""


class RecordBody(RecordBodyOf[RecordItem]):
    """One page of a pair's record."""


class AcceptedEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    position: str = Field(description="Where the event sits in the log (opaque token).")


class Accepted(BaseModel):
    """Ingest's answer to a POST: each event's position, and one covering them all."""

    model_config = ConfigDict(frozen=True)

    accepted: list[AcceptedEvent]
    position: str = Field(
        description="Covers every event of the request; pass it to the API as min_position."
    )
    appended: int | None = Field(
        None,
        description="How many of the events this request appended (the others were in the "
        "log already), from ingest's Chancery-Appended header; None when it does not say.",
    )


@dataclass(frozen=True)
class SseMessage:
    """One message of the API's event stream, as sent: its `event` name, `data` and `id`."""

    event: str
    data: str
    id: str | None


@dataclass(frozen=True)
class StreamedEvent:
    """An event the stream delivered, and the position to resume right after it."""

    position: str
    event: Event


@dataclass(frozen=True)
class RetryNotice:
    """What the client is about to wait for, before it tries again."""

    service: str
    url: str
    reason: str
    delay_s: float
    attempt: int
    """Attempts made so far (the first request is attempt 1)."""
    reconnecting: bool = False
    """A stream being reopened (rather than a request being sent again)."""
    resume_from: str | None = None
    """For a stream: the position it resumes after (None: from the start)."""

    def __str__(self) -> str:
        if self.reconnecting:
            resume = f"from {self.resume_from}" if self.resume_from else "from the start"
            return (
                f"stream interrupted ({self.reason}); reconnecting {resume} in {self.delay_s:.3g} s"
            )
        return f"{self.service}: {self.reason}; retrying in {self.delay_s:.1f} s"
