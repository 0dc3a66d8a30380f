"""Dependencies every read route shares: context, auth, read-your-writes, page size."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.types import DecoratedCallable
from pydantic import BaseModel

from chancery.auth import ANONYMOUS_ADMIN, Principal, Scope, utcnow
from services.api.consistency import reach
from services.api.context import ApiContext, context_of
from services.api.examples import ok
from services.api.params import invalid
from services.api.representation import MIN_POSITION_HEADER
from services.platform.web import Problem


async def _context(request: Request) -> ApiContext:
    # async: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    return context_of(request)


Context = Annotated[ApiContext, Depends(_context)]

POSITION_EXAMPLE = "chancery.events@0:41,3:7"


async def read_context(request: Request) -> ApiContext:
    """Every read: the scope events:read, then read-your-writes (min_position).

    Reads the request itself, not three declared parameters: FastAPI's per-parameter
    machinery is a measurable share of a fast read. The parameters are declared for the
    docs in CONSISTENCY (add it as `openapi_extra`). Routes call it directly or as `Read`.
    """
    ctx = context_of(request)
    principal = ctx.principals.authenticate(request.headers.get("authorization"), now=utcnow())
    principal.require(Scope.EVENTS_READ)
    await reach(
        ctx, request.query_params.get("min_position"), request.headers.get(MIN_POSITION_HEADER)
    )
    return ctx


async def _read(request: Request) -> ApiContext:
    return await read_context(request)


Read = Annotated[ApiContext, Depends(_read)]

CONSISTENCY: dict[str, Any] = {
    "parameters": [
        {
            "name": "min_position",
            "in": "query",
            "required": False,
            "description": "Answer only once this position (from ingest's answer) is applied; "
            "waits up to 5 s, then 504. Same as the Chancery-Min-Position header.",
            "schema": {"type": "string"},
            "example": POSITION_EXAMPLE,
        },
        {
            "name": MIN_POSITION_HEADER,
            "in": "header",
            "required": False,
            "description": "Same as the min_position query parameter.",
            "schema": {"type": "string"},
            "example": POSITION_EXAMPLE,
        },
    ]
}


def page_size(ctx: ApiContext, limit: int | None) -> int:
    if limit is None:
        return min(ctx.settings.page_size_default, ctx.settings.page_size_max)
    if not 1 <= limit <= ctx.settings.page_size_max:
        raise invalid("limit", f"must be between 1 and {ctx.settings.page_size_max}")
    return limit


Limit = Annotated[int | None, Query(description="Items per page (default 50, at most 500).")]
CursorParam = Annotated[
    str | None, Query(description="`next_cursor` of the previous page (opaque).")
]


# --- streams: auth a browser can send, and a bounded number per client ------------------------


async def _stream_principal(
    request: Request,
    access_token: Annotated[
        str | None,
        Query(
            description="For EventSource, which cannot send headers: the API key or JWT. "
            "Prefer the Authorization header where the client can set it (URLs end up in "
            "logs); use a short-lived JWT here."
        ),
    ] = None,
) -> Principal:
    authenticator = context_of(request).authenticator
    header = request.headers.get("authorization")
    if not authenticator.enabled:
        return ANONYMOUS_ADMIN
    if header or access_token is None:
        principal = authenticator.authenticate(header, now=utcnow())
    else:
        principal = authenticator.verify_credential(access_token, now=utcnow())
    principal.require(Scope.EVENTS_READ)
    return principal


StreamPrincipal = Annotated[Principal, Depends(_stream_principal)]


async def _stream_slot(request: Request, principal: StreamPrincipal) -> AsyncIterator[None]:
    ctx = context_of(request)
    if principal.kind == "anonymous":
        client = f"ip:{request.client.host if request.client else 'unknown'}"
    else:
        client = f"{principal.kind}:{principal.subject}"
    if not ctx.streams.take(client):
        ctx.metrics.streams_refused.inc()
        raise Problem(
            429,
            "Too Many Requests",
            f"{client} already has {ctx.streams.limit} streams open; close one first",
            headers={"Retry-After": "5"},
        )
    ctx.metrics.streams_open.inc()
    try:
        yield
    finally:
        ctx.streams.give_back(client)
        ctx.metrics.streams_open.dec()


StreamSlot = Annotated[None, Depends(_stream_slot)]


READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not Modified: the If-None-Match ETag still matches."},
    401: {"description": "Missing or invalid credentials."},
    403: {"description": "The credentials lack the scope events:read."},
    422: {"description": "A parameter is invalid (an unknown code, a bad position, ...)."},
    503: {
        "description": "The read models are being rebuilt; Retry-After, and the progress "
        "in `rebuilding`."
    },
    504: {"description": "min_position was not applied within the wait; retry."},
}


def read_route(
    router: APIRouter,
    path: str,
    *,
    model: type[BaseModel],
    example: dict[str, Any],
    summary: str,
    description: str | None = None,
    responses: dict[int | str, dict[str, Any]] | None = None,
    openapi_extra: dict[str, Any] = CONSISTENCY,
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A GET that reads the read models: documented with the parameters read_context reads
    (CONSISTENCY, or a route's own list that includes them), the statuses every read shares,
    the 200's example, and any `responses` of its own."""
    return router.get(
        path,
        openapi_extra=openapi_extra,
        response_model=model,
        responses={**READ_RESPONSES, 200: ok(example), **(responses or {})},
        summary=summary,
        description=description,
    )
