"""People, their trips and the visits they make: itineraries, visits, people.

Now: the trips as the projector folded them (one per traveller and trip id, in the person's
partition). `as_of` and `known_at` refold the person's trip events with `fold_itinerary`
(O(events of the person's trips)). Visits are the legs of trips, indexed under the
destination ("to") and under the traveller's state or organisation ("from"), at their
best-known dates: started, else planned, else the trip's.
"""

from __future__ import annotations

from datetime import date, datetime

from chancery.answers import (
    AppointmentBody,
    Direction,
    ItineraryBody,
    PersonBody,
    TripSummary,
    VisitBody,
)
from chancery.contract import EnvoyAppointed, Person
from chancery.domain import Itinerary, Trip, fold_itinerary

from . import cursors
from .reader import Page, PeopleReads, ReadResult, VisitEntry, VisitQuery


def _latest_traveller(trips: list[Trip]) -> Person | None:
    """The traveller as the latest trip event names them (as `fold_itinerary` does)."""
    best: tuple[tuple[str, str, str], Person] | None = None
    for trip in trips:
        for change in trip.history:
            key = (change.when.sort_key(), change.event.source, change.event.id)
            if best is None or key > best[0]:
                best = (key, trip.traveller)
    return best[1] if best is not None else None


async def itinerary(
    reader: PeopleReads,
    person_id: str,
    *,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> ReadResult[Itinerary]:
    if as_of is None and known_at is None:
        now = await reader.trips(person_id)
        return ReadResult(
            Itinerary(
                person_id=person_id,
                person=_latest_traveller(now.value),
                trips=tuple(now.value),
            ),
            now.snapshot,
        )
    history = await reader.trip_history(person_id, known_at)
    folded = fold_itinerary(person_id, history.value, as_of=as_of, known_at=known_at)
    return ReadResult(folded, history.snapshot)


def itinerary_body(
    value: Itinerary, *, as_of: date | None, known_at: datetime | None
) -> ItineraryBody:
    return ItineraryBody(
        person_id=value.person_id,
        person=value.person,
        as_of=as_of,
        known_at=known_at,
        trips=value.trips,
    )


def _visit_body(entry: VisitEntry) -> VisitBody | None:
    trip = entry.trip
    if trip is None:
        return None
    leg = next((leg for leg in trip.legs if leg.country == entry.country), None)
    if leg is None:
        return None
    when = trip.leg_date(leg)
    return VisitBody(
        when=str(when) if when is not None else None,
        country=entry.country,
        city=leg.city,
        direction=entry.direction,
        leg_status=leg.status,
        trip_id=trip.trip_id,
        trip_status=trip.status,
        traveller=trip.traveller,
        purpose=trip.purpose,
    )


async def visits(
    reader: PeopleReads,
    country: str,
    *,
    start: date | None,
    end: date | None,
    direction: Direction | None,
    status: frozenset[str] | None,
    cursor: str | None,
    limit: int,
) -> ReadResult[tuple[list[VisitBody], str | None]]:
    """A page of visits, filtered by leg status, and the cursor of the next page.

    Reads index pages until `limit` visits pass the status filter or the index ends.
    """
    query_id = f"{country}|{start}|{end}|{direction}|{','.join(sorted(status or ()))}"
    after = cursors.resume_after(cursor, "visits", query_id, other="query")
    items: list[VisitBody] = []
    reading: ReadResult[Page[VisitEntry]] | None = None
    last: str | None = None
    more = True
    while more and len(items) < limit:
        page = await reader.visits(
            VisitQuery(country, limit, start=start, end=end, direction=direction, after=after)
        )
        snapshot = page.snapshot if reading is None else reading.snapshot.later(page.snapshot)
        reading = ReadResult(page.value, snapshot)
        more = page.value.more
        for n, entry in enumerate(page.value.items):
            body = _visit_body(entry)
            last = entry.member
            if body is not None and (status is None or body.leg_status in status):
                items.append(body)
                if len(items) == limit:
                    more = more or n + 1 < len(page.value.items)
                    break
        after = last
        if not page.value.items:
            break
    assert reading is not None
    cursor_out = cursors.encode("visits", q=query_id, m=last) if more and last else None
    return ReadResult((items, cursor_out), reading.snapshot)


def _appointment(event: EnvoyAppointed) -> AppointmentBody:
    data = event.data
    return AppointmentBody(
        role=data.role,
        appointed_by=data.appointed_by,
        occurred=data.occurred,
        previous_roles=data.previous_roles,
        mandate=data.mandate,
        event=event.ref,
    )


async def person(reader: PeopleReads, person_id: str) -> ReadResult[PersonBody | None]:
    reading = await reader.person(person_id)
    record = reading.value
    appointments = sorted(
        (e for e in record.appointments if isinstance(e, EnvoyAppointed)),
        key=lambda e: (e.data.occurred.sort_key(), e.source, e.id),
    )
    if not appointments and not record.trips:
        return ReadResult(None, reading.snapshot)
    who = _latest_traveller(record.trips)
    if who is None and appointments:
        who = appointments[-1].data.person
    body = PersonBody(
        id=person_id,
        person=who,
        appointments=[_appointment(e) for e in appointments],
        trips=[
            TripSummary(
                trip_id=t.trip_id,
                status=t.status,
                planned=t.planned,
                destinations=tuple(leg.country for leg in t.legs),
                purpose=t.purpose,
            )
            for t in record.trips
        ],
    )
    return ReadResult(body, reading.snapshot)
