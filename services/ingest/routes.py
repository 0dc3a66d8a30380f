"""Ingest's HTTP routes: thin: parse, call the use case, shape the answer, count it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast

import pydantic_core
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from chancery.auth import AuthenticationError, PermissionDeniedError, Principal, Scope, utcnow
from chancery.contract import EventEnvelope
from services.platform.web import Problem

from . import parsing
from .context import IngestContext, context_dependency, context_of
from .errors import rejection_reason, to_problem
from .examples import BATCH_EXAMPLE, EVENT_EXAMPLES
from .service import LOGGED_IDS, Accepted, IngestError

logger = logging.getLogger(__name__)

Context = Annotated[IngestContext, Depends(context_dependency)]


class DirectRoute(APIRoute):
    """A documented route whose endpoint takes the `Request` and returns the `Response`
    itself: FastAPI's request handler (dependencies, body and response-model layers, per
    request) is left out. The OpenAPI document and the error handlers are as for any route.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


router = APIRouter()
# The POST routes: they authenticate, read, validate and answer on their own. FastAPI's
# dependency and body layers do per-request work these routes do not need (they read the
# raw body themselves, and validate it in one pass). The docs still show the body, the
# answers and the security scheme.
write_router = APIRouter(route_class=DirectRoute)

SECURITY = [{"bearer": ["events:write"]}]


def _authorize(ctx: IngestContext, request: Request) -> Principal:
    """Authenticate and require `events:write`, counting and logging each refusal."""
    try:
        principal = ctx.authenticator.authenticate(
            request.headers.get("authorization"), now=utcnow()
        )
        principal.require(Scope.EVENTS_WRITE)
    except (AuthenticationError, PermissionDeniedError) as exc:
        reason = "unauthenticated" if isinstance(exc, AuthenticationError) else "forbidden"
        ctx.metrics.rejected.labels(reason).inc()
        logger.info("request refused (%s): %s", reason, exc, extra={"reason": reason})
        raise
    return principal


class AcceptedEventBody(BaseModel):
    id: str
    position: str = Field(description="Where the event sits in the log (opaque token).")


class AcceptedBody(BaseModel):
    accepted: list[AcceptedEventBody]
    position: str = Field(
        description="Covers every event of the request; pass it to the API as min_position."
    )


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON."},
    401: {"description": "Missing or invalid credentials."},
    403: {"description": "The credentials lack the scope events:write."},
    409: {"description": "Same source and id as an accepted event, different content."},
    413: {"description": "The body is too large."},
    415: {"description": "Unsupported Content-Type."},
    422: {"description": "An event is invalid (each named by index and field)."},
    503: {"description": "Kafka is unreachable; retry after Retry-After seconds."},
}


def _body_doc(
    schema: dict[str, Any], examples: dict[str, Any], media: tuple[str, ...]
) -> dict[str, Any]:
    content = {m: {"schema": schema, "examples": examples} for m in media}
    return {"requestBody": {"required": True, "content": content}, "security": SECURITY}


async def _ingest(ctx: IngestContext, request: Request, *, batch: bool) -> Response:
    counted = 1  # events a refusal counts as, once the body shows how many there are
    obj: Any = None
    settings = ctx.settings
    try:
        parsing.check_content_type(
            request.headers.get("content-type"),
            parsing.BATCH_TYPES if batch else parsing.SINGLE_TYPES,
        )
        body = await parsing.read_body(
            request.receive,
            content_length=request.headers.get("content-length"),
            limit=settings.max_body_bytes,
            timeout_s=settings.body_timeout_s,
        )
        events = parsing.parse_valid_body(body, batch=batch, max_events=settings.max_batch_events)
        if events is None:  # something is wrong with the body: find out what, and say so
            obj = parsing.parse_json(body)
            if batch and isinstance(obj, list):
                counted = max(1, len(obj))
            events = (
                parsing.parse_batch(obj, max_events=settings.max_batch_events)
                if batch
                else [parsing.parse_event(obj)]
            )
        else:
            obj = events
            counted = len(events)
        try:
            accepted = await ctx.service.ingest(events)
        except IngestError as exc:
            raise to_problem(exc, retry_after_s=settings.retry_after_s) from exc
    except Problem as problem:
        reason = rejection_reason(problem)
        ctx.metrics.rejected.labels(reason).inc(counted)
        logger.info(
            "request refused (%s): %s",
            reason,
            problem.detail,
            extra={"reason": reason, "status": problem.status, "event_ids": _ids_of(obj)},
        )
        raise
    appended = accepted.appended
    ctx.metrics.appended.inc(appended)
    if appended < len(accepted.events):
        ctx.metrics.duplicates.inc(len(accepted.events) - appended)
    return Response(
        pydantic_core.to_json(_accepted_body(accepted)),
        status_code=202,
        media_type="application/json",
        # The body keeps its documented shape; how many events this request appended (the
        # rest were already in the log) travels beside it.
        headers={APPENDED_HEADER: str(appended)},
    )


APPENDED_HEADER = "Chancery-Appended"


def _ids_of(obj: Any) -> list[str]:
    """The ids a refused body carried (for the log), as far as they can be read."""
    items = obj if isinstance(obj, list) else [obj]
    return [
        str(item["id"])[:128] if isinstance(item, dict) else item.id
        for item in items[:LOGGED_IDS]
        if (isinstance(item, dict) and "id" in item) or isinstance(item, EventEnvelope)
    ]


def _accepted_body(accepted: Accepted) -> dict[str, Any]:
    return {
        "accepted": [{"id": e.id, "position": e.position} for e in accepted.events],
        "position": accepted.position.token(),
    }


@write_router.post(
    "/v1/events",
    status_code=202,
    response_model=AcceptedBody,
    responses=PROBLEM_RESPONSES,
    summary="Record one event",
    description="One CloudEvent in structured JSON mode. Idempotent on (source, id).",
    openapi_extra=_body_doc(
        {"$ref": "#/components/schemas/Event"}, EVENT_EXAMPLES, parsing.SINGLE_TYPES
    ),
    tags=["events"],
)
async def post_event(request: Request) -> Response:
    ctx = context_of(request)
    _authorize(ctx, request)
    return await _ingest(ctx, request, batch=False)


@write_router.post(
    "/v1/events/batch",
    status_code=202,
    response_model=AcceptedBody,
    responses=PROBLEM_RESPONSES,
    summary="Record a batch of events, all or nothing",
    description="A JSON array of CloudEvents. If any is invalid, none is published.",
    openapi_extra=_body_doc(
        {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
        {"article": {"summary": "two of the article's events", "value": BATCH_EXAMPLE}},
        parsing.BATCH_TYPES,
    ),
    tags=["events"],
)
async def post_batch(request: Request) -> Response:
    ctx = context_of(request)
    _authorize(ctx, request)
    return await _ingest(ctx, request, batch=True)


@router.get("/healthz", tags=["operations"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], summary="Kafka and Redis are reachable")
async def readyz(ctx: Context) -> JSONResponse:
    (kafka_ok, kafka), (redis_ok, redis) = await asyncio.gather(
        ctx.publisher.is_ready(), ctx.idempotency.is_ready()
    )
    ready = kafka_ok and redis_ok
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": {
            "kafka": {"ok": kafka_ok, "detail": kafka},
            "redis": {"ok": redis_ok, "detail": redis},
        },
    }
    headers = {} if ready else {"Retry-After": str(ctx.settings.retry_after_s)}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics")
async def metrics(ctx: Context) -> Response:
    ctx.metrics.settling.set(ctx.service.settling)
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
