"""Ingest's HTTP routes as FastAPI declares and documents them.

The two write routes are served by endpoint.py (`IngestApp` hands their requests to it
before FastAPI's layers); declared here, they give the OpenAPI document its bodies, answers
and security, and a router that does reach them runs the same `endpoint.accept`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from . import endpoint, parsing
from .context import IngestContext, context_dependency, context_of
from .endpoint import APPENDED_HEADER
from .examples import BATCH_EXAMPLE, EVENT_EXAMPLES

Context = Annotated[IngestContext, Depends(context_dependency)]


class DirectRoute(APIRoute):
    """A documented route whose endpoint takes the `Request` and returns the `Response`
    itself: FastAPI's request handler (dependencies, body and response-model layers, per
    request) is left out. The OpenAPI document and the error handlers are as for any route.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


router = APIRouter()
# The POST routes: they authenticate, read, validate and answer on their own (endpoint.py).
write_router = APIRouter(route_class=DirectRoute)

__all__ = ["APPENDED_HEADER", "router", "write_router"]

SECURITY = [{"bearer": ["events:write"]}]


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
    422: {"description": "An event is invalid (each named by index and field, or header)."},
    503: {"description": "Kafka is unreachable; retry after Retry-After seconds."},
}

# Binary mode's headers: one per attribute of the envelope. Their constraints are the
# Event schema's (the same validation): here each is only a string, so that a request in
# structured mode, which has none of them, is not taken as missing any.
BINARY_HEADERS: list[dict[str, Any]] = [
    {
        "name": f"ce-{name}",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": f"Binary mode: the event's `{name}` ({what}); percent-encoded as the "
        "CloudEvents HTTP binding says.",
    }
    for name, what in (
        ("specversion", "required: `1.0`"),
        ("id", "required"),
        ("source", "required"),
        ("type", "required: a `diplomacy.*` type of the catalogue"),
        ("time", "required: RFC 3339 with an offset"),
        ("subject", "optional"),
    )
]

BINARY_DESCRIPTION = """
One CloudEvent, in either content mode of the CloudEvents HTTP binding. Idempotent on
(source, id).

- **Structured**: the whole event as the JSON body, Content-Type
  `application/cloudevents+json` (or `application/json`).
- **Binary**: each attribute in its `ce-` header (`ce-specversion`, `ce-id`, `ce-source`,
  `ce-type`, `ce-time`, optionally `ce-subject`), the event's `data` as the body, and its
  media type, `application/json`, as Content-Type (absent means JSON). A request with any
  `ce-` header and a Content-Type that is not `application/cloudevents...` is in binary
  mode. `ce-recordedtime`, `ce-partitionkey` and `ce-datacontenttype` are refused; an
  attribute that is missing or invalid is named by its header (`ce-type`).

Both modes get the same validation and the same answers.
"""


def _body_doc(content: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": content}, "security": SECURITY}


def _examples(schema: dict[str, Any], examples: dict[str, Any]) -> dict[str, Any]:
    return {"schema": schema, "examples": examples}


EVENT_REF = {"$ref": "#/components/schemas/Event"}
# What an `application/json` body of POST /v1/events may be: a structured event, or in
# binary mode an event's data (IngestApp.openapi fills in the payloads' references).
EVENT_OR_DATA_REF = {"$ref": "#/components/schemas/EventOrData"}


async def _write(request: Request, *, batch: bool) -> Response:
    answer = await endpoint.accept(
        context_of(request),
        endpoint.head_of(request.scope["headers"]),
        request.receive,
        batch=batch,
    )
    return Response(
        answer.body,
        status_code=202,
        media_type="application/json",
        headers={APPENDED_HEADER: str(answer.appended)},
    )


@write_router.post(
    "/v1/events",
    status_code=202,
    response_model=AcceptedBody,
    responses=PROBLEM_RESPONSES,
    summary="Record one event",
    description=BINARY_DESCRIPTION,
    openapi_extra={
        **_body_doc(
            {
                "application/cloudevents+json": _examples(EVENT_REF, EVENT_EXAMPLES),
                "application/json": _examples(EVENT_OR_DATA_REF, EVENT_EXAMPLES),
            }
        ),
        "parameters": BINARY_HEADERS,
    },
    tags=["events"],
)
async def post_event(request: Request) -> Response:
    return await _write(request, batch=False)


@write_router.post(
    "/v1/events/batch",
    status_code=202,
    response_model=AcceptedBody,
    responses=PROBLEM_RESPONSES,
    summary="Record a batch of events, all or nothing",
    description="A JSON array of CloudEvents (batched mode). If any is invalid, none is published.",
    openapi_extra=_body_doc(
        {
            media: _examples(
                {"type": "array", "items": EVENT_REF},
                {"article": {"summary": "two of the article's events", "value": BATCH_EXAMPLE}},
            )
            for media in parsing.BATCH_TYPES
        }
    ),
    tags=["events"],
)
async def post_batch(request: Request) -> Response:
    return await _write(request, batch=True)


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
