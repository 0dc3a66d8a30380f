"""Routes: a country's timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chancery.answers import TimelineBody
from services.api import params
from services.api.examples import TIMELINE_EXAMPLE

from .common import CursorParam, Limit, Read, read_route
from .relations import CountryCode, FromDay, Order, ToDay, TypeFilter, timeline_response

router = APIRouter(tags=["timelines"])


@read_route(
    router,
    "/v1/countries/{c}/timeline",
    model=TimelineBody,
    example=TIMELINE_EXAMPLE,
    summary="The events an actor took part in, in the order they occurred",
    description="Every effective event involving the state or organisation (parties, "
    "speakers and targets, mediators, travellers and destinations), filtered by type and day, "
    "in pages.",
)
async def country_timeline(
    *,
    ctx: Read,
    request: Request,
    c: CountryCode,
    types: TypeFilter = None,
    start: FromDay = None,
    end: ToDay = None,
    order: Order = "asc",
    cursor: CursorParam = None,
    limit: Limit = None,
) -> Response:
    code = params.actor(c, "c")
    return await timeline_response(
        ctx=ctx,
        request=request,
        kind="country",
        key=code,
        types=types,
        start=start,
        end=end,
        order=order,
        cursor=cursor,
        limit=limit,
    )
