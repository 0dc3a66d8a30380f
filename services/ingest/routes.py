"""Ingest's HTTP routes: thin: parse, call the use case, shape the answer."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from chancery.auth import Principal, Scope
from services.platform.web import Problem, scope_dependency

from . import parsing
from .context import IngestContext, context_of
from .errors import rejection_reason, to_problem
from .examples import BATCH_EXAMPLE, EVENT_EXAMPLES
from .service import Accepted, IngestError

router = APIRouter()

Context = Annotated[IngestContext, Depends(context_of)]
Writer = Annotated[
    Principal, Depends(scope_dependency(lambda r: context_of(r).authenticator, Scope.EVENTS_WRITE))
]


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


def _body_doc(examples: dict[str, Any], media: tuple[str, ...]) -> dict[str, Any]:
    content = {
        m: {"schema": {"$ref": "#/components/schemas/Event"}, "examples": examples} for m in media
    }
    return {"requestBody": {"required": True, "content": content}}


async def _ingest(ctx: IngestContext, request: Request, *, batch: bool) -> JSONResponse:
    ctx.metrics.in_flight.inc()
    try:
        parsing.check_content_type(
            request.headers.get("content-type"),
            parsing.BATCH_TYPES if batch else parsing.SINGLE_TYPES,
        )
        body = await parsing.read_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            limit=ctx.settings.max_body_bytes,
            timeout_s=ctx.settings.body_timeout_s,
        )
        obj = parsing.parse_json(body)
        events = (
            parsing.parse_batch(obj, max_events=ctx.settings.max_batch_events)
            if batch
            else [parsing.parse_event(obj)]
        )
        started = time.perf_counter()
        try:
            accepted = await ctx.service.ingest(events)
        except IngestError as exc:
            raise to_problem(exc, retry_after_s=ctx.settings.retry_after_s) from exc
        ctx.metrics.publish_latency.observe(time.perf_counter() - started)
    except Problem as problem:
        ctx.metrics.rejected.labels(rejection_reason(problem)).inc()
        raise
    finally:
        ctx.metrics.in_flight.dec()
    ctx.metrics.accepted.labels("appended").inc(accepted.appended)
    ctx.metrics.accepted.labels("duplicate").inc(len(accepted.events) - accepted.appended)
    return JSONResponse(_accepted_body(accepted), status_code=202)


def _accepted_body(accepted: Accepted) -> dict[str, Any]:
    return {
        "accepted": [{"id": e.id, "position": e.position.token()} for e in accepted.events],
        "position": accepted.position.token(),
    }


@router.post(
    "/v1/events",
    status_code=202,
    response_model=AcceptedBody,
    responses=PROBLEM_RESPONSES,
    summary="Record one event",
    description="One CloudEvent in structured JSON mode. Idempotent on (source, id).",
    openapi_extra=_body_doc(EVENT_EXAMPLES, parsing.SINGLE_TYPES),
    tags=["events"],
)
async def post_event(ctx: Context, _: Writer, request: Request) -> JSONResponse:
    return await _ingest(ctx, request, batch=False)


@router.post(
    "/v1/events/batch",
    status_code=202,
    response_model=AcceptedBody,
    responses=PROBLEM_RESPONSES,
    summary="Record a batch of events, all or nothing",
    description="A JSON array of CloudEvents. If any is invalid, none is published.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                m: {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                    "examples": {"article": {"value": BATCH_EXAMPLE}},
                }
                for m in parsing.BATCH_TYPES
            },
        }
    },
    tags=["events"],
)
async def post_batch(ctx: Context, _: Writer, request: Request) -> JSONResponse:
    return await _ingest(ctx, request, batch=True)


@router.get("/healthz", tags=["operations"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], summary="Kafka and Redis are reachable")
async def readyz(ctx: Context) -> JSONResponse:
    kafka_ok, kafka = await ctx.publisher.is_ready()
    redis_ok, redis = await ctx.idempotency.is_ready()
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
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
