"""Routes: events by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from chancery.answers import EventsBody
from services.api import event_views, params, timeline_views
from services.api.examples import EVENT_EXAMPLE
from services.api.representation import represent
from services.platform.web import Problem

from .common import Read, read_route

router = APIRouter(tags=["events"])


@read_route(
    router,
    "/v1/events/{event_id}",
    model=EventsBody,
    example=EVENT_EXAMPLE,
    responses={404: {"description": "No event has this id (from this source)."}},
    summary="Events by id, with where they sit in the log and whether they still count",
)
async def get_event(
    *,
    ctx: Read,
    request: Request,
    event_id: Annotated[
        str,
        Path(
            description="The producer's event id.",
            openapi_examples={"Vienna talks": {"value": "wang-yi-sullivan-vienna-talks"}},
        ),
    ],
    source: Annotated[
        str | None,
        Query(
            description="Only the event from this source (ids are unique per source).",
            openapi_examples={
                "the article": {"value": "https://chancery.example/seeds/article-li-hui-2023-05-12"}
            },
        ),
    ] = None,
) -> Response:
    eid = params.event_id(event_id)
    reading = await event_views.events_by_id(ctx.reader, eid, params.source(source))
    if not reading.value:
        raise Problem(404, "Not Found", f"no event with id {eid!r}")
    body = EventsBody(
        id=eid, matches=[timeline_views.logged(ctx.reader.topic, s) for s in reading.value]
    )
    return represent(request, body, reading.snapshot)
