"""Routes: relations through time (a pair's score series and record, a country's relations
on a day). See services/api/history.py."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from chancery.answers import CountryRelationsBody, RecordBody, RelationSort, ScoreSeriesBody
from services.api import history, params
from services.api.examples_history import (
    COUNTRY_RELATIONS_EXAMPLE,
    RECORD_EXAMPLE,
    SCORE_SERIES_EXAMPLE,
)
from services.api.representation import represent

from .common import CursorParam, Limit, Read, page_size, read_route
from .relations import AsOf, CodeA, CodeB, CountryCode, KnownAt, Order

router = APIRouter(tags=["relations through time"])


@read_route(
    router,
    "/v1/relations/{a}/{b}/scores",
    model=ScoreSeriesBody,
    example=SCORE_SERIES_EXAMPLE,
    summary="A pair's score over time, by week or month",
    description="The score and climate as of the last day of each period (ISO weeks, or "
    "calendar months), with the events that occurred in it: each point is what the relation "
    "answers `as_of` that day. From `from` (default: the pair's first event) to `to` "
    "(default, and at most: the day read on, today or `as_of`). With `known_at`, from what "
    "Chancery had recorded by then. At most 1000 points (422 beyond: narrow the range or use "
    "months). Costs O(periods with events x the pair's days); with known_at, plus "
    "O(events of the pair).",
)
async def score_series(
    *,
    ctx: Read,
    request: Request,
    a: CodeA,
    b: CodeB,
    bucket: Annotated[
        Literal["week", "month"], Query(description="ISO weeks or calendar months.")
    ] = "week",
    start: Annotated[
        params.Day | None,
        Query(alias="from", description="The first day (its whole period is shown)."),
    ] = None,
    end: Annotated[
        params.Day | None,
        Query(
            alias="to",
            description="The last day; the last point's score is read on it.",
            openapi_examples={"end of May 2023": {"value": "2023-05-31"}},
        ),
    ] = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
) -> Response:
    pair = params.pair(a, b)
    reading = await history.score_series_of(
        ctx.reader,
        pair,
        today=ctx.today(),
        bucket=bucket,
        start=start,
        end=end,
        as_of=as_of,
        known_at=known_at,
    )
    return represent(request, reading.value, reading.snapshot)


@read_route(
    router,
    "/v1/relations/{a}/{b}/record",
    model=RecordBody,
    example=RECORD_EXAMPLE,
    summary="A pair's events as known at a time, retracted ones marked",
    description="Every event of the pair that Chancery had recorded by `known_at` (default: "
    "now) and that occurred by `as_of`, in the order they occurred, in pages. Unlike the "
    "timeline, a retracted event is listed, with `retracted` and its retraction, when the "
    "retraction was known at that time; before it, the event is listed as it then stood. "
    "Costs O(events of the pair) per page.",
)
async def pair_record(
    *,
    ctx: Read,
    request: Request,
    a: CodeA,
    b: CodeB,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    order: Order = "desc",
    cursor: CursorParam = None,
    limit: Limit = None,
) -> Response:
    pair = params.pair(a, b)
    reading = await history.record_of(
        ctx.reader,
        pair,
        now=ctx.clock(),
        as_of=as_of,
        known_at=known_at,
        descending=order == "desc",
        cursor=cursor,
        limit=page_size(ctx, limit),
    )
    return represent(request, reading.value, reading.snapshot)


@read_route(
    router,
    "/v1/countries/{c}/relations",
    model=CountryRelationsBody,
    example=COUNTRY_RELATIONS_EXAMPLE,
    summary="A country's relations on a day, as known at a time: every partner at once",
    description="What `/v1/relations?country=` lists, for any day (`as_of`) and as Chancery "
    "knew it at any time (`known_at`), in one answer (for a map): each partner with anything "
    "known of the pair by then. Partners are those of the current read models, so one known "
    "at `known_at` only through events retracted since is not listed. Costs one pipelined "
    "read of every partner's ledger; with known_at, O(events of the country's pairs).",
)
async def country_relations(
    *,
    ctx: Read,
    request: Request,
    c: CountryCode,
    as_of: AsOf = None,
    known_at: KnownAt = None,
    sort: Annotated[RelationSort, Query(description="What to sort by.")] = "score",
    order: Order = "desc",
) -> Response:
    code = params.actor(c, "c")
    reading = await history.country_relations(
        ctx.reader,
        code,
        today=ctx.today(),
        as_of=as_of,
        known_at=known_at,
        sort=sort,
        descending=order == "desc",
    )
    return represent(request, reading.value, reading.snapshot)
