"""Hypothesis strategies that generate valid Chancery events of every type.

The world is small on purpose (a handful of actors, people, trips and proposals over the
first half of 2023) so that generated events collide: the same pairs, the same trips, the
same days, which is where ordering, merging and retraction bugs live.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from chancery.contract import (
    EVENT_TYPES,
    Event,
    EventRetracted,
    Person,
    When,
    cameo,
    event_key,
    partition_key,
    stamp,
)

STATES = ("CHN", "USA", "RUS", "UKR", "IRN", "SAU")
ACTORS = (*STATES, "NATO", "EU")
SOURCES = ("https://wire.example/feed", "urn:chancery:test")
FIRST_DAY = date(2023, 1, 1)
LAST_DAY = date(2023, 6, 30)

PEOPLE = (
    Person(id="li-hui", name="Li Hui", country="CHN", role="special representative"),
    Person(id="antony-blinken", name="Antony Blinken", country="USA", role="Secretary of State"),
    Person(id="sergey-lavrov", name="Sergey Lavrov", country="RUS"),
    Person(
        id="jens-stoltenberg",
        name="Jens Stoltenberg",
        country="NOR",
        role="Secretary General",
        organisation="NATO",
    ),
)
TRIPS = (("trip-a", PEOPLE[0]), ("trip-b", PEOPLE[1]), ("trip-c", PEOPLE[3]), ("trip-d", PEOPLE[0]))
PROPOSALS = ("plan-a", "plan-b")
CAMEO_CODES = tuple(sorted(cameo.table()))

RETRACTED = "diplomacy.event.retracted"
OCCURRING_TYPES = tuple(name for name in EVENT_TYPES if name != RETRACTED)

days = st.dates(min_value=FIRST_DAY, max_value=LAST_DAY)


@st.composite
def when_texts(draw: st.DrawFn) -> str:
    """A `When` of any precision inside the world's half year."""
    day = draw(days)
    form = draw(st.sampled_from(("day", "month", "week", "interval", "datetime")))
    if form == "day":
        return day.isoformat()
    if form == "month":
        return f"{day:%Y-%m}"
    if form == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if form == "interval":
        end = day + timedelta(days=draw(st.integers(0, 4)))
        return f"{day.isoformat()}/{end.isoformat()}"
    hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    offset = draw(st.sampled_from(("Z", "+08:00", "-05:00", "+00:00")))
    seconds = draw(st.sampled_from(("", ":30", ":05.25")))
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}{seconds}{offset}"


whens = when_texts().map(When)


def _subset(
    pool: tuple[str, ...], *, min_size: int, max_size: int, exclude: str | None = None
) -> st.SearchStrategy[list[str]]:
    choices = tuple(p for p in pool if p != exclude)
    return st.lists(st.sampled_from(choices), min_size=min_size, max_size=max_size, unique=True)


def _person_dict(person: Person) -> dict[str, Any]:
    return person.model_dump(exclude_none=True)


@st.composite
def _coding(draw: st.DrawFn) -> dict[str, Any]:
    """Sometimes override the type's CAMEO code or Goldstein value."""
    out: dict[str, Any] = {}
    if draw(st.integers(0, 4)) == 0:
        out["cameo"] = draw(st.sampled_from(CAMEO_CODES))
    if draw(st.integers(0, 4)) == 0:
        out["goldstein"] = draw(st.integers(-100, 100)) / 10
    return out


@st.composite
def _legs(draw: st.DrawFn, traveller: Person, planned: str | None) -> list[dict[str, Any]]:
    countries = draw(_subset(STATES, min_size=1, max_size=3, exclude=traveller.country))
    legs: list[dict[str, Any]] = []
    for country in countries:
        leg: dict[str, Any] = {"country": country}
        if draw(st.booleans()):
            leg["city"] = "Capital"
        if planned is not None and draw(st.booleans()):
            # a day inside the trip's month
            month = When(planned)
            span = (month.end - month.start).days - 1
            leg["planned"] = (
                month.first_day + timedelta(days=draw(st.integers(0, span)))
            ).isoformat()
        legs.append(leg)
    return legs


def _month(day: date) -> str:
    return f"{day:%Y-%m}"


@st.composite
def coded_data(draw: st.DrawFn, occurred: str, max_mentions: int = 500) -> dict[str, Any]:
    """A coded event's data: two actors, a CAMEO code, maybe a Goldstein value and mentions."""
    data: dict[str, Any] = {
        "actor1": draw(st.sampled_from(ACTORS)),
        "actor2": draw(st.sampled_from(ACTORS)),
        "cameo": draw(st.sampled_from(CAMEO_CODES)),
        "occurred": occurred,
    }
    if draw(st.booleans()):
        data["goldstein"] = draw(st.integers(-100, 100)) / 10
    if draw(st.booleans()):
        data["mentions"] = draw(st.integers(0, max_mentions))
    return data


@st.composite
def payloads(draw: st.DrawFn, type_name: str) -> dict[str, Any]:
    """A valid `data` object of `type_name` (not a retraction)."""
    occurred = draw(when_texts())
    data: dict[str, Any] = {"occurred": occurred}
    short = type_name.removeprefix("diplomacy.")
    if short.startswith("visit."):
        trip_id, traveller = draw(st.sampled_from(TRIPS))
        data |= {"trip_id": trip_id, "traveller": _person_dict(traveller)}
        planned = _month(draw(days)) if draw(st.booleans()) else None
        if short in {"visit.announced", "visit.postponed"}:
            data["legs"] = draw(_legs(traveller, planned))
            if planned is not None:
                data["planned"] = planned
        elif short == "visit.rescheduled":
            planned = planned or _month(draw(days))
            data |= {"legs": draw(_legs(traveller, planned)), "planned": planned}
            dropped = [c for c in STATES if c not in {leg["country"] for leg in data["legs"]}]
            data["dropped"] = draw(st.lists(st.sampled_from(dropped), max_size=1, unique=True))
        elif short in {"visit.cancelled", "visit.completed"}:
            countries = draw(_subset(STATES, min_size=1, max_size=3, exclude=traveller.country))
            data["destinations"] = [{"country": c} for c in countries]
        else:  # leg started / completed
            data["country"] = draw(st.sampled_from([s for s in STATES if s != traveller.country]))
    elif short == "envoy.appointed":
        person = draw(st.sampled_from(PEOPLE))
        data |= {"person": _person_dict(person), "appointed_by": person.actor, "role": "envoy"}
    elif short == "meeting.held":
        parties = draw(_subset(ACTORS, min_size=2, max_size=3))
        data |= {"parties": parties, "mode": draw(st.sampled_from(("in_person", "phone", "video")))}
        others = [a for a in ACTORS if a not in parties]
        if draw(st.booleans()):
            data["mediator"] = draw(st.sampled_from(others))
        speakers = [p for p in PEOPLE if p.actor in parties]
        with_participant = draw(st.booleans())
        if speakers and with_participant:
            data["participants"] = [_person_dict(speakers[0])]
        if draw(st.booleans()):
            data["characterisations"] = ["candid"]
    elif short == "relations.changed":
        parties = draw(_subset(ACTORS, min_size=2, max_size=2))
        data |= {
            "parties": parties,
            "change": draw(
                st.sampled_from(
                    ("established", "restored", "upgraded", "downgraded", "suspended", "severed")
                )
            ),
        }
        if draw(st.booleans()):
            data["mediator"] = draw(st.sampled_from([a for a in ACTORS if a not in parties]))
    elif short == "partnership.declared":
        data |= {
            "parties": draw(_subset(ACTORS, min_size=2, max_size=3)),
            "label": draw(st.sampled_from(("no limits", "strategic", "comprehensive"))),
        }
    elif short == "stance.declared":
        party = draw(st.sampled_from(ACTORS))
        data |= {
            "party": party,
            "issue": "the war",
            "position": draw(st.sampled_from(("supports", "opposes", "neutral"))),
            "aligned_with": draw(_subset(ACTORS, min_size=0, max_size=2, exclude=party)),
        }
    elif short == "statement.made":
        by = draw(st.sampled_from(ACTORS))
        data |= {
            "by": by,
            "kind": draw(
                st.sampled_from(("accuse", "blame", "criticise", "praise", "appeal", "comment"))
            ),
            "targets": draw(_subset(ACTORS, min_size=0, max_size=2, exclude=by)),
        }
    elif short == "proposal.made":
        by = draw(st.sampled_from(ACTORS))
        data |= {
            "proposal_id": draw(st.sampled_from(PROPOSALS)),
            "by": by,
            "title": "a plan",
            "regarding": draw(_subset(ACTORS, min_size=0, max_size=2, exclude=by)),
        }
    elif short == "proposal.rejected":
        proposer = draw(st.sampled_from(ACTORS))
        data |= {
            "proposal_id": draw(st.sampled_from(PROPOSALS)),
            "proposer": proposer,
            "by": draw(_subset(ACTORS, min_size=1, max_size=2, exclude=proposer)),
        }
    elif short == "incident.occurred":
        data |= {
            "parties": draw(_subset(ACTORS, min_size=2, max_size=3)),
            "summary": "an incident",
            "locations": draw(_subset(STATES, min_size=0, max_size=2)),
        }
    elif short == "event.coded":
        return draw(coded_data(occurred))
    else:  # pragma: no cover - a new type needs a strategy
        raise AssertionError(f"no strategy for {type_name}")
    return data | draw(_coding())


def _reported_after(occurred: When, lag_hours: int) -> datetime:
    return max(occurred.start, datetime(2023, 1, 1, tzinfo=UTC)) + timedelta(hours=lag_hours)


def build(
    type_name: str, event_id: str, source: str, data: dict[str, Any], time: datetime
) -> Event:
    """An event of `type_name`, validated the way the log's decoder would."""
    envelope = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type_name,
        "time": time.isoformat(),
        "data": data,
    }
    return EVENT_TYPES[type_name].model_validate(envelope)


@st.composite
def occurring_events(draw: st.DrawFn, event_id: str, type_name: str | None = None) -> Event:
    """One valid event of any type but a retraction."""
    name = type_name or draw(st.sampled_from(OCCURRING_TYPES))
    data = draw(payloads(name))
    occurred = When(data["occurred"])
    time = _reported_after(occurred, draw(st.integers(0, 24 * 20)))
    return build(name, event_id, draw(st.sampled_from(SOURCES)), data, time)


def retraction(event_id: str, source: str, target: Event, time: datetime) -> EventRetracted:
    event = build(
        RETRACTED,
        event_id,
        source,
        {"target": {"source": target.source, "id": target.id}, "reason": "a correction"},
        time,
    )
    assert isinstance(event, EventRetracted)
    return event


@st.composite
def histories(
    draw: st.DrawFn, *, min_size: int = 0, max_size: int = 14, retractions: bool = True
) -> list[Event]:
    """Distinct events (unique identities) of every type, some of them retractions.

    Retractions name earlier generated events, now and then another retraction (which
    must then be void).
    """
    count = draw(st.integers(min_size, max_size))
    events: list[Event] = [draw(occurring_events(f"e{i}")) for i in range(count)]
    if retractions and events:
        for j in range(draw(st.integers(0, min(3, len(events))))):
            target = draw(st.sampled_from(events))
            time = datetime(2023, 7, 1, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 400)))
            events.append(retraction(f"r{j}", draw(st.sampled_from(SOURCES)), target, time))
    return events


def log_key(event: Event, events: list[Event]) -> str:
    """The partition key the log gives `event`; a retraction takes its target's key."""
    by_key = {e.key: e for e in events}
    key = partition_key(event)
    while key is None:
        assert isinstance(event, EventRetracted)
        target = by_key.get(event_key(event.data.target.source, event.data.target.id))
        if target is None:
            return "unknown-target"
        event = target
        key = partition_key(event)
    return key


def stamped(events: list[Event], recorded: list[datetime]) -> list[Event]:
    """The events as the log holds them: with recordedtime and partitionkey."""
    return [
        stamp(event, recorded_at=at, partition_key=log_key(event, events))
        for event, at in zip(events, recorded, strict=True)
    ]
