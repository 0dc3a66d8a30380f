"""The first step of every fold: which events count, as known at a time, as of a date.

- `effective`: one event per identity (`source`, `id`), without retracted events and
  without the retractions themselves, in order. A retraction whose target is itself a
  retraction is void: corrections are final, so the result never depends on which of two
  retractions was seen first.
- `recorded_by(events, K)`: what Chancery knew at K (`recordedtime <= K`). An event with no
  `recordedtime` was never accepted by ingest and is not known at any time.
- `occurred_by(events, D)`: what had occurred by the end of day D (`occurred` starts on or
  before D). Retractions are kept whatever their date: they correct the record, not the world.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from chancery.contract import Event, EventRetracted, content_digest, event_key

from .ordering import in_order, occurred_of


def supersedes(event: Event, kept: Event) -> bool:
    """Whether `event` takes the place of `kept`, an event of the same identity, whichever
    came first: the smaller content digest (two contents under one identity should never
    pass ingest); for the same content, the copy recorded first (a copy that a retry had
    re-stamped later tells nothing new), then the smaller partition key. Order-free: of any
    copies, the same one is kept."""
    if event == kept:
        return False
    digest, kept_digest = content_digest(event), content_digest(kept)
    if digest != kept_digest:
        return digest < kept_digest
    return _recording(event) < _recording(kept)


def earlier_copy(event: Event, kept: Event) -> bool:
    """Whether `event` is a copy of `kept` (same content) that `supersedes` it, that is one
    recorded earlier: the copy the read models keep in its place. Two contents under one
    identity never pass ingest; should they, the read models keep the first applied."""
    recorded, kept_recorded = event.recordedtime, kept.recordedtime
    if recorded is None or (kept_recorded is not None and recorded >= kept_recorded):
        return False  # the common duplicate, an exact copy, ends here: no digest needed
    # Same content, so `supersedes` comes down to the recording: here, earlier is enough.
    return content_digest(event) == content_digest(kept)


def _recording(event: Event) -> tuple[bool, datetime, str]:
    """A copy's rank among copies of the same content: stamped before unstamped (an event
    with no `recordedtime` was never accepted), then earlier `recordedtime` first."""
    recorded = event.recordedtime
    return recorded is None, recorded or _NEVER, event.partitionkey or ""


_NEVER = datetime.max.replace(tzinfo=UTC)


def _unique(events: Iterable[Event]) -> dict[str, Event]:
    """One event per identity: of several copies, the one that `supersedes` the others."""
    unique: dict[str, Event] = {}
    for event in events:
        key = event.key
        kept = unique.get(key)
        if kept is None or supersedes(event, kept):
            unique[key] = event
    return unique


def retracted_keys(events: Iterable[Event]) -> frozenset[str]:
    """Keys of the events that a (non-void) retraction in `events` retracts."""
    unique = _unique(events)
    retracted: set[str] = set()
    for event in unique.values():
        if isinstance(event, EventRetracted):
            target = event_key(event.data.target.source, event.data.target.id)
            if not isinstance(unique.get(target), EventRetracted):
                retracted.add(target)
    return frozenset(retracted)


def effective(events: Iterable[Event]) -> list[Event]:
    """Deduplicated, retractions applied, in order."""
    unique = _unique(events)
    retracted = retracted_keys(unique.values())
    return in_order(
        event
        for key, event in unique.items()
        if key not in retracted and not isinstance(event, EventRetracted)
    )


def recorded_by(events: Iterable[Event], known_at: datetime) -> list[Event]:
    return [e for e in events if e.recordedtime is not None and e.recordedtime <= known_at]


def occurred_by(events: Iterable[Event], day: date) -> list[Event]:
    return [
        e
        for e in events
        if isinstance(e, EventRetracted) or occurred_of(e).starts_on_or_before(day)
    ]


def select(
    events: Iterable[Event], *, as_of: date | None = None, known_at: datetime | None = None
) -> list[Event]:
    """The effective events known at `known_at` that occurred by `as_of` (both optional)."""
    chosen = list(events)
    if known_at is not None:
        chosen = recorded_by(chosen, known_at)
    if as_of is not None:
        chosen = occurred_by(chosen, as_of)
    return effective(chosen)
