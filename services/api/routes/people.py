"""Routes: itineraries, visits, people."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from chancery.answers import Direction, ItineraryBody, PersonBody, VisitsBody
from services.api import params, people_views
from services.api.examples import ITINERARY_EXAMPLE, PERSON_EXAMPLE, VISITS_EXAMPLE
from services.api.representation import represent
from services.platform.web import Problem

from .common import CursorParam, Limit, Read, page_size, read_route
from .relations import AsOf, FromDay, KnownAt, ToDay

router = APIRouter(tags=["people and trips"])

PersonId = Annotated[
    str,
    Path(
        description="The lowercase slug of the person's name.",
        openapi_examples={
            "Li Hui": {"value": "li-hui"},
            "Antony Blinken": {"value": "antony-blinken"},
        },
    ),
]
LEG_STATUSES = ("planned", "postponed", "in_progress", "completed", "cancelled")


@read_route(
    router,
    "/v1/itineraries/{person_id}",
    model=ItineraryBody,
    example=ITINERARY_EXAMPLE,
    summary="A person's trips and their legs, with status",
    description="Now: the trips as projected. as_of and known_at refold the person's trip "
    "events (O(events of their trips)). A person with no trips has an empty list.",
)
async def get_itinerary(
    *,
    ctx: Read,
    request: Request,
    person_id: PersonId,
    as_of: AsOf = None,
    known_at: KnownAt = None,
) -> Response:
    pid = params.person_id(person_id)
    reading = await people_views.itinerary(ctx.reader, pid, as_of=as_of, known_at=known_at)
    body = people_views.itinerary_body(reading.value, as_of=as_of, known_at=known_at)
    return represent(request, body, reading.snapshot)


@read_route(
    router,
    "/v1/visits",
    model=VisitsBody,
    example=VISITS_EXAMPLE,
    summary="Visits to or from a country within a window, upcoming and past",
    description="The legs of trips that go to the country (`direction=to`) or that its people "
    "make abroad (`direction=from`); both unless `direction` is given. Ordered by the legs' "
    "best-known dates.",
)
async def list_visits(
    *,
    ctx: Read,
    request: Request,
    country: Annotated[
        str,
        Query(
            description="State or organisation code.",
            openapi_examples={"Ukraine": {"value": "UKR"}},
        ),
    ],
    start: FromDay = None,
    end: ToDay = None,
    direction: Annotated[Direction | None, Query(description="to, from, or both.")] = None,
    status: Annotated[
        list[str] | None,
        Query(description="Leg statuses to keep: " + ", ".join(LEG_STATUSES) + "."),
    ] = None,
    cursor: CursorParam = None,
    limit: Limit = None,
) -> Response:
    code = params.actor(country, "country")
    statuses = None
    if status:
        statuses = frozenset(s.strip() for v in status for s in v.split(",") if s.strip())
        unknown = sorted(statuses - set(LEG_STATUSES))
        if unknown:
            raise params.invalid(
                "status", f"'{unknown[0][:30]}' is not one of {', '.join(LEG_STATUSES)}"
            )
    if start is not None and end is not None and end < start:
        raise params.invalid("to", "the window ends before it starts")
    reading = await people_views.visits(
        ctx.reader,
        code,
        start=start,
        end=end,
        direction=direction,
        status=statuses,
        cursor=cursor,
        limit=page_size(ctx, limit),
    )
    items, next_cursor = reading.value
    body = VisitsBody(country=code, items=items, next_cursor=next_cursor)
    return represent(request, body, reading.snapshot)


@read_route(
    router,
    "/v1/people/{person_id}",
    model=PersonBody,
    example=PERSON_EXAMPLE,
    responses={404: {"description": "No event names this person."}},
    summary="A person: appointments and trips",
)
async def get_person(*, ctx: Read, request: Request, person_id: PersonId) -> Response:
    pid = params.person_id(person_id)
    reading = await people_views.person(ctx.reader, pid)
    if reading.value is None:
        raise Problem(404, "Not Found", f"no event names a person with id {pid!r}")
    return represent(request, reading.value, reading.snapshot)
