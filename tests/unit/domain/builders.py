"""Terse builders for the "given these events" part of domain tests.

Each returns a validated event; the report `time` is the end of `occurred` (a source reports
an event once it is over) unless given.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chancery.contract import EVENT_TYPES, Event, When, stamp
from chancery.contract.routing import partition_key

SOURCE = "https://wire.example/feed"

LI_HUI: dict[str, Any] = {"id": "li-hui", "name": "Li Hui", "country": "CHN"}
BLINKEN: dict[str, Any] = {"id": "antony-blinken", "name": "Antony Blinken", "country": "USA"}


def event(
    type_name: str,
    event_id: str,
    data: dict[str, Any],
    *,
    source: str = SOURCE,
    time: datetime | None = None,
) -> Event:
    when = When(data["occurred"]) if "occurred" in data else None
    reported = time or (when.end if when else datetime.fromisoformat("2023-07-01T00:00:00+00:00"))
    return EVENT_TYPES[f"diplomacy.{type_name}"].model_validate(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": f"diplomacy.{type_name}",
            "time": reported.isoformat(),
            "data": data,
        }
    )


def recorded(e: Event, at: str) -> Event:
    """`e` as ingest would have recorded it at `at` (ISO 8601 with offset)."""
    return stamp(e, recorded_at=datetime.fromisoformat(at), partition_key=partition_key(e) or "x")


def meeting(event_id: str, occurred: str, *parties: str, **more: Any) -> Event:
    return event("meeting.held", event_id, {"occurred": occurred, "parties": list(parties), **more})


def relations_changed(
    event_id: str, occurred: str, a: str, b: str, change: str, **more: Any
) -> Event:
    return event(
        "relations.changed",
        event_id,
        {"occurred": occurred, "parties": [a, b], "change": change, **more},
    )


def partnership(event_id: str, occurred: str, label: str, *parties: str) -> Event:
    return event(
        "partnership.declared",
        event_id,
        {"occurred": occurred, "parties": list(parties), "label": label},
    )


def statement(
    event_id: str, occurred: str, by: str, kind: str, *targets: str, **more: Any
) -> Event:
    return event(
        "statement.made",
        event_id,
        {"occurred": occurred, "by": by, "kind": kind, "targets": list(targets), **more},
    )


def coded(event_id: str, occurred: str, actor1: str, actor2: str, cameo: str, **more: Any) -> Event:
    return event(
        "event.coded",
        event_id,
        {"actor1": actor1, "actor2": actor2, "cameo": cameo, "occurred": occurred, **more},
    )


def incident(event_id: str, occurred: str, *parties: str) -> Event:
    return event(
        "incident.occurred",
        event_id,
        {"occurred": occurred, "parties": list(parties), "summary": "an incident"},
    )


def retraction(event_id: str, target: Event, *, time: str = "2023-07-01T00:00:00+00:00") -> Event:
    return event(
        "event.retracted",
        event_id,
        {"target": {"source": target.source, "id": target.id}},
        time=datetime.fromisoformat(time),
    )


def trip_event(
    type_name: str,
    event_id: str,
    occurred: str,
    *,
    trip: str = "li-hui-eurasia",
    traveller: dict[str, Any] | None = None,
    **more: Any,
) -> Event:
    data = {"occurred": occurred, "trip_id": trip, "traveller": traveller or LI_HUI, **more}
    return event(f"visit.{type_name}", event_id, data)


def legs(*countries: str) -> list[dict[str, Any]]:
    return [{"country": country} for country in countries]


def later(text: str, days: int) -> str:
    return (When(text).first_day + timedelta(days=days)).isoformat()
