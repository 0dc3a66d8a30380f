"""Routes: a pair's relation, a country's relations, a pair's timeline."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from chancery.answers import RelationBody, RelationListBody, RelationSort, TimelineBody
from services.api import params, relation_views, timeline_views
from services.api.context import ApiContext
from services.api.examples import RELATION_EXAMPLE, RELATION_LIST_EXAMPLE, TIMELINE_EXAMPLE
from services.api.reader import TimelineQuery
from services.api.representation import represent, represent_payload

from .common import (
    CONSISTENCY,
    CursorParam,
    Limit,
    Read,
    page_size,
    read_context,
    read_route,
)

router = APIRouter(tags=["relations"])

CodeA = Annotated[
    str,
    Path(
        description="A state (ISO 3166-1 alpha-3) or organisation code, any case.",
        openapi_examples={"China": {"value": "CHN"}, "Iran": {"value": "irn"}},
    ),
]
CodeB = Annotated[
    str,
    Path(
        description="The other party; the order of the two does not matter.",
        openapi_examples={"United States": {"value": "USA"}, "Saudi Arabia": {"value": "SAU"}},
    ),
]
CountryCode = Annotated[
    str,
    Path(description="State or organisation code.", openapi_examples={"China": {"value": "CHN"}}),
]
AsOf = Annotated[
    params.Day | None,
    Query(
        description="The state as of the end of this day, from the pair's history: only what "
        "occurred by then counts, and last/next contact are measured from it.",
        openapi_examples={"before Beijing's mediation": {"value": "2023-02-28"}},
    ),
]
KnownAt = Annotated[
    AwareDatetime | None,
    Query(
        description="What Chancery knew at this instant (RFC 3339 with an offset): only events "
        "recorded by then, retractions included only if recorded by then. Refolds the pair's "
        "events: costs O(events of the pair), where as_of does not.",
        openapi_examples={"before the seeds": {"value": "2023-05-12T00:00:00Z"}},
    ),
]


def _documented(
    name: str,
    where: Literal["path", "query"],
    description: str,
    schema: dict[str, Any],
    examples: dict[str, str],
) -> dict[str, Any]:
    """An OpenAPI parameter as FastAPI would declare it (for routes that read the request
    themselves)."""
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {**schema, "description": description, "title": name.replace("_", " ").title()},
        "description": description,
        "examples": {label: {"value": value} for label, value in examples.items()},
    }


def _nullable(fmt: str) -> dict[str, Any]:
    return {"anyOf": [{"type": "string", "format": fmt}, {"type": "null"}]}


RELATION_PARAMETERS: dict[str, Any] = {
    "parameters": [
        _documented(
            "a",
            "path",
            "A state (ISO 3166-1 alpha-3) or organisation code, any case.",
            {"type": "string"},
            {"China": "CHN", "Iran": "irn"},
        ),
        _documented(
            "b",
            "path",
            "The other party; the order of the two does not matter.",
            {"type": "string"},
            {"United States": "USA", "Saudi Arabia": "SAU"},
        ),
        _documented(
            "as_of",
            "query",
            "The state as of the end of this day, from the pair's history: only what occurred "
            "by then counts, and last/next contact are measured from it.",
            _nullable("date"),
            {"before Beijing's mediation": "2023-02-28"},
        ),
        _documented(
            "known_at",
            "query",
            "What Chancery knew at this instant (RFC 3339 with an offset): only events recorded "
            "by then, retractions included only if recorded by then. Refolds the pair's events: "
            "costs O(events of the pair), where as_of does not.",
            _nullable("date-time"),
            {"before the seeds": "2023-05-12T00:00:00Z"},
        ),
        *CONSISTENCY["parameters"],
    ]
}


@read_route(
    router,
    "/v1/relations/{a}/{b}",
    model=RelationBody,
    example=RELATION_EXAMPLE,
    openapi_extra=RELATION_PARAMETERS,
    summary="The relation between two actors",
    description="Status, partnership, score and climate, event counts, last and next contact. "
    "A pair with no events answers status `unknown`, not 404. Supports ETag/If-None-Match.",
)
async def get_relation(request: Request) -> Response:
    """The hot read: takes the request itself (parameters documented in RELATION_PARAMETERS,
    validated here with the same rules), so FastAPI's per-parameter machinery, a large share
    of a read answered from cache, is not run."""
    ctx = await read_context(request)
    path = request.path_params
    pair = params.pair(path["a"], path["b"])
    as_of = known_at = None
    if request.scope["query_string"]:
        query = request.query_params
        as_of = params.day(query.get("as_of"), "as_of")
        known_at = params.instant(query.get("known_at"), "known_at")
    reading = await relation_views.relation_payload(
        ctx.reader, ctx.bodies, pair, today=ctx.today(), as_of=as_of, known_at=known_at
    )
    return represent_payload(request, reading.value, reading.snapshot)


@read_route(
    router,
    "/v1/relations",
    model=RelationListBody,
    example=RELATION_LIST_EXAMPLE,
    summary="Every relation of a country",
    description="Each pair that includes `country`, sorted, in pages. Computes each pair's "
    "relation (one pipelined read), so it costs O(partners).",
)
async def list_relations(
    *,
    ctx: Read,
    request: Request,
    country: Annotated[
        str,
        Query(
            description="State or organisation code.", openapi_examples={"China": {"value": "CHN"}}
        ),
    ],
    sort: Annotated[RelationSort, Query(description="What to sort by.")] = "score",
    order: Annotated[Literal["asc", "desc"], Query(description="Sort direction.")] = "desc",
    cursor: CursorParam = None,
    limit: Limit = None,
) -> Response:
    code = params.actor(country, "country")
    descending = order == "desc"
    reading = await relation_views.relations_of(
        ctx.reader,
        code,
        today=ctx.today(),
        sort=sort,
        descending=descending,
        cursor=cursor,
        limit=page_size(ctx, limit),
    )
    body = RelationListBody(
        country=code,
        sort=sort,
        order=order,
        items=[relation_views.item_of(s) for s in reading.value.items],
        next_cursor=relation_views.next_cursor(reading.value, code, sort, descending),
    )
    return represent(request, body, reading.snapshot)


TypeFilter = Annotated[
    list[str] | None,
    Query(
        alias="type",
        description="Event types to keep (repeat, or comma-separated); `meeting.held` or "
        "`diplomacy.meeting.held`.",
        openapi_examples={"meetings": {"value": ["meeting.held"]}},
    ),
]
FromDay = Annotated[
    params.Day | None, Query(alias="from", description="Events that start on or after this day.")
]
ToDay = Annotated[
    params.Day | None, Query(alias="to", description="Events that start by this day.")
]
Order = Annotated[
    Literal["asc", "desc"], Query(description="Oldest first (asc) or newest first (desc).")
]


async def timeline_response(
    *,
    ctx: ApiContext,
    request: Request,
    kind: Literal["pair", "country"],
    key: str,
    types: list[str] | None,
    start: date | None,
    end: date | None,
    order: Literal["asc", "desc"],
    cursor: str | None,
    limit: int | None,
) -> Response:
    chosen = params.event_types(types)
    if start is not None and end is not None and end < start:
        raise params.invalid("to", "the window ends before it starts")
    query_id = "|".join([kind, key, order, str(start), str(end), ",".join(sorted(chosen or ()))])
    query = TimelineQuery(
        kind=kind,
        key=key,
        limit=page_size(ctx, limit),
        types=chosen,
        start=start,
        end=end,
        after=timeline_views.decode_cursor(cursor, query_id),
        descending=order == "desc",
    )
    reading = await timeline_views.timeline(ctx.reader, query)
    body = timeline_views.body_of(ctx.reader.topic, f"{kind}:{key}", reading.value, query_id)
    return represent(request, body, reading.snapshot)


@read_route(
    router,
    "/v1/relations/{a}/{b}/timeline",
    model=TimelineBody,
    example=TIMELINE_EXAMPLE,
    summary="The events between two actors, in the order they occurred",
    description="Effective events only (retracted ones are left out), filtered by type and "
    "day, in pages.",
)
async def pair_timeline(
    *,
    ctx: Read,
    request: Request,
    a: CodeA,
    b: CodeB,
    types: TypeFilter = None,
    start: FromDay = None,
    end: ToDay = None,
    order: Order = "asc",
    cursor: CursorParam = None,
    limit: Limit = None,
) -> Response:
    pair = params.pair(a, b)
    return await timeline_response(
        ctx=ctx,
        request=request,
        kind="pair",
        key=pair.key,
        types=types,
        start=start,
        end=end,
        order=order,
        cursor=cursor,
        limit=limit,
    )
