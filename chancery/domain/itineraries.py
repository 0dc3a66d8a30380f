"""Trips and their legs, per person: what the visit events say happened to each trip.

A trip is identified by its traveller and its `trip_id`; every visit event carries both.
`fold_trip` replays a trip's effective events in occurrence order (never arrival order),
so a `visit.leg.started` that reaches the log before its `visit.announced` folds the same.

Trip status follows the latest event: announced, postponed, rescheduled, in_progress (a leg
started or completed), completed or cancelled. Each leg keeps its own status and its dates
at the precision they were given; a leg announced without dates is planned for the trip's
dates.

`leg_plans` is the plan each event asserts for the legs it names. The relation view uses it
for "next contact", so a postponed or cancelled trip stops counting as a planned contact in
exactly the way it stops being planned here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from chancery.contract import (
    Event,
    EventRef,
    Person,
    TripPayload,
    VisitAnnouncedData,
    VisitCancelledData,
    VisitCompletedData,
    VisitLegCompleted,
    VisitLegData,
    VisitPostponedData,
    VisitRescheduledData,
    When,
)

from .history import select
from .ordering import occurred_of, order_key

TripStatus = Literal[
    "announced", "postponed", "rescheduled", "in_progress", "completed", "cancelled"
]
LegStatus = Literal["planned", "postponed", "in_progress", "completed", "cancelled"]


class LegState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    country: str
    city: str | None = None
    status: LegStatus
    planned: When | None = None
    started: When | None = None
    completed: When | None = None


class TripChange(BaseModel):
    """One entry of a trip's history: what happened, when, and the status it left."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    when: When
    type: str
    event: EventRef
    status: TripStatus
    detail: str | None = None


class Trip(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trip_id: str
    traveller: Person
    status: TripStatus
    planned: When | None = None
    purpose: str | None = None
    legs: tuple[LegState, ...]
    history: tuple[TripChange, ...]

    def leg_date(self, leg: LegState) -> When | None:
        """The date a leg is known by, and indexed by in a country's visits: when it
        started, else when it is planned, else the trip's planned date, else when the trip
        was first heard of. None only for a trip with no dates at all."""
        when = leg.started or leg.planned or self.planned
        if when is None and self.history:
            when = self.history[0].when
        return when

    def visits(self) -> list[Visit]:
        """Each leg, as it appears in the visits of its destination ("to") and of the
        traveller's own state or organisation ("from"), at its `leg_date`."""
        home = self.traveller.actor
        out: list[Visit] = []
        for leg in self.legs:
            when = self.leg_date(leg)
            if when is not None:
                out.append(Visit(leg.country, leg.country, "to", when))
                out.append(Visit(home, leg.country, "from", when))
        return out


class Visit(NamedTuple):
    """A leg in the visits of `country`: to `leg_country` (its destination) or from it."""

    country: str
    leg_country: str
    direction: Literal["to", "from"]
    when: When


class Itinerary(BaseModel):
    """A person's trips, ordered by when each was first heard of."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person_id: str
    person: Person | None
    trips: tuple[Trip, ...]


def trip_payload(event: Event) -> TripPayload | None:
    return event.data if isinstance(event.data, TripPayload) else None


def leg_plans(event: Event) -> Mapping[str, When | None]:
    """Country -> the dates this event plans for that leg (None: no longer planned)."""
    data = event.data
    match data:
        case VisitAnnouncedData() | VisitPostponedData():
            return {leg.country: leg.planned or data.planned for leg in data.legs}
        case VisitRescheduledData():
            plans: dict[str, When | None] = {c: None for c in data.dropped}
            plans.update({leg.country: leg.planned or data.planned for leg in data.legs})
            return plans
        case VisitCancelledData() | VisitCompletedData():
            return {destination.country: None for destination in data.destinations}
        case VisitLegData():
            return {data.country: None}
    return {}


_DONE: frozenset[LegStatus] = frozenset({"in_progress", "completed"})


class _TripReplay:
    """Mutable state while replaying one trip's events in order; frozen into a `Trip`."""

    def __init__(self, trip_id: str, traveller: Person) -> None:
        self.trip_id = trip_id
        self.traveller = traveller
        self.status: TripStatus = "announced"
        self.planned: When | None = None
        self.purpose: str | None = None
        self.legs: dict[str, LegState] = {}
        self.history: list[TripChange] = []

    def _leg(self, country: str, city: str | None) -> LegState:
        leg = self.legs.get(country)
        if leg is None:
            leg = LegState(country=country, city=city, status="planned")
        elif city is not None and leg.city is None:
            leg = leg.model_copy(update={"city": city})
        return leg

    def _plan(
        self, country: str, city: str | None, status: LegStatus, planned: When | None
    ) -> None:
        leg = self._leg(country, city)
        if leg.status not in _DONE:
            leg = leg.model_copy(update={"status": status, "planned": planned})
        self.legs[country] = leg

    def _any_leg_underway(self) -> bool:
        return any(leg.status in _DONE for leg in self.legs.values())

    def apply(self, event: Event) -> None:
        data = event.data
        occurred = occurred_of(event)
        detail: str | None = None
        self.traveller = data.traveller if isinstance(data, TripPayload) else self.traveller
        match data:
            case VisitAnnouncedData():
                self.planned, self.purpose = data.planned, data.purpose
                for leg in data.legs:
                    self._plan(leg.country, leg.city, "planned", leg.planned or data.planned)
                self.status = "in_progress" if self._any_leg_underway() else "announced"
                detail = data.purpose
            case VisitPostponedData():
                self.planned = data.planned
                for leg in data.legs:
                    self._plan(leg.country, leg.city, "postponed", leg.planned or data.planned)
                self.status = "postponed"
                detail = data.reason
            case VisitRescheduledData():
                self.planned = data.planned
                for leg in data.legs:
                    self._plan(leg.country, leg.city, "planned", leg.planned or data.planned)
                for country in data.dropped:
                    self._plan(country, None, "cancelled", None)
                self.status = "rescheduled"
                detail = data.reason
            case VisitLegData():
                state = self._leg(data.country, data.city)
                if isinstance(event, VisitLegCompleted):
                    update: dict[str, object] = {"status": "completed", "completed": occurred}
                elif state.status != "completed":
                    update = {"status": "in_progress", "started": occurred}
                else:
                    update = {"started": occurred}
                self.legs[data.country] = state.model_copy(update=update)
                self.status = "in_progress"
            case VisitCancelledData():
                for destination in data.destinations:
                    self.legs[destination.country] = self._leg(
                        destination.country, destination.city
                    )
                for country, current in self.legs.items():
                    if current.status != "completed":
                        self.legs[country] = current.model_copy(update={"status": "cancelled"})
                self.status = "cancelled"
                detail = data.reason
            case VisitCompletedData():
                visited = {destination.country for destination in data.destinations}
                for destination in data.destinations:
                    self.legs[destination.country] = self._leg(
                        destination.country, destination.city
                    )
                for country, current in self.legs.items():
                    done = country in visited or current.status in _DONE
                    status: LegStatus = "completed" if done else "cancelled"
                    self.legs[country] = current.model_copy(update={"status": status})
                self.status = "completed"
        self.history.append(
            TripChange(
                when=occurred, type=event.type, event=event.ref, status=self.status, detail=detail
            )
        )

    def freeze(self) -> Trip:
        return Trip(
            trip_id=self.trip_id,
            traveller=self.traveller,
            status=self.status,
            planned=self.planned,
            purpose=self.purpose,
            legs=tuple(self.legs.values()),
            history=tuple(self.history),
        )


def _replay(ordered: list[Event]) -> Trip:
    first = trip_payload(ordered[0])
    if first is None:
        raise ValueError("a trip is folded from visit events")
    replay = _TripReplay(first.trip_id, first.traveller)
    for event in ordered:
        replay.apply(event)
    return replay.freeze()


def fold_trip(events: Iterable[Event]) -> Trip:
    """The state of one trip from its events (any order, duplicates and retractions allowed).

    Raises ValueError if no effective visit event remains, or if the events are about
    several trips.
    """
    chosen = [event for event in select(events) if trip_payload(event) is not None]
    trips = {(data.traveller.id, data.trip_id) for data in map(trip_payload, chosen) if data}
    if len(trips) != 1:
        raise ValueError(f"fold_trip needs the events of exactly one trip, got {len(trips)}")
    return _replay(chosen)


def fold_itinerary(
    person_id: str,
    events: Iterable[Event],
    *,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> Itinerary:
    """Every trip of `person_id`, as known at `known_at`, from events occurred by `as_of`."""
    by_trip: dict[str, list[Event]] = {}
    for event in select(events, as_of=as_of, known_at=known_at):
        data = trip_payload(event)
        if data is not None and data.traveller.id == person_id:
            by_trip.setdefault(data.trip_id, []).append(event)
    trips = sorted(
        ((order_key(trip_events[0]), _replay(trip_events)) for trip_events in by_trip.values()),
        key=lambda keyed: keyed[0],
    )
    latest = max(
        (e for trip_events in by_trip.values() for e in trip_events), key=order_key, default=None
    )
    latest_data = trip_payload(latest) if latest is not None else None
    return Itinerary(
        person_id=person_id,
        person=latest_data.traveller if latest_data is not None else None,
        trips=tuple(trip for _, trip in trips),
    )
