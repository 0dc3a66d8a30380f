"""The two write routes, served below FastAPI: `POST /v1/events` and `POST /v1/events/batch`.

`IngestApp` hands these two requests to `serve` instead of to FastAPI's middleware stack,
router and request objects, which cost more per request than what these routes do
themselves (docs/performance.md). `serve` keeps what those layers did for them, to the
byte: the correlation id (taken or made, echoed, in every log record), the in-flight gauge,
and every failure as the same problem response (`services.platform.web`). The routes stay
declared in routes.py, so the OpenAPI document is FastAPI's as before, and a router that
does reach them runs the same `accept`.

Content modes (the CloudEvents HTTP binding): structured (`application/cloudevents+json`,
or `application/json` without `ce-` headers), batched (`/v1/events/batch`), and binary
(`ce-*` headers and the data as the body: binary_mode.py), one path for all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import pydantic_core
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from chancery.auth import AuthenticationError, PermissionDeniedError, utcnow
from chancery.auth import Scope as AuthScope
from chancery.contract.plain import Incoming, incoming
from chancery.observability import correlation_id
from services.platform.web import (
    CORRELATION_HEADER,
    PROBLEM_JSON,
    Problem,
    incoming_correlation_id,
)

from . import binary_mode, parsing
from .context import IngestContext
from .errors import rejection_reason, to_problem
from .service import LOGGED_IDS, Accepted, IngestError

logger = logging.getLogger(__name__)

APPENDED_HEADER = "Chancery-Appended"
WRITE_PATHS = {"/v1/events": False, "/v1/events/batch": True}  # path -> is the batch route
_CORRELATION = CORRELATION_HEADER.lower().encode()
_ACCEPTED_HEADERS = ((b"content-type", b"application/json"),)


class Head(NamedTuple):
    """What `accept` reads of a request's headers, found in one pass."""

    authorization: str | None
    content_type: str | None
    content_length: str | None
    headers: Sequence[tuple[bytes, bytes]]  # all of them (binary mode reads its `ce-*`)


def head_of(headers: Sequence[tuple[bytes, bytes]]) -> Head:
    authorization = content_type = content_length = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            content_length = value.decode("latin-1")
    return Head(authorization, content_type, content_length, headers)


# After refusing a request whose body has not all arrived, the rest is read and dropped, up
# to this long, so that the client, still sending, reads the answer instead of finding the
# connection reset (granian closes a connection whose request body is left unread).
DRAIN_S = 30.0


class _Receiver:
    """`receive`, noting whether the request's body has ended."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.ended = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.ended = True
        return message


async def _drain(body: _Receiver, limit: int) -> None:
    """Read and drop the rest of a refused request's body (bounded in time and bytes)."""
    left = 2 * limit
    with contextlib.suppress(TimeoutError, ClientDisconnect):
        async with asyncio.timeout(DRAIN_S):
            while not body.ended and left > 0:
                left -= len((await body()).get("body", b""))


class Answer(NamedTuple):
    body: bytes
    appended: int  # events this request appended (the rest were in the log already)


class _Body:
    """What a request's body showed, for the refusal's count and log line."""

    obj: Any = None  # the decoded body, or its events
    counted = 1  # events a refusal counts as, once the body shows how many there are


async def accept(ctx: IngestContext, head: Head, receive: Receive, *, batch: bool) -> Answer:
    """Authenticate, read, validate, ingest: the 202's body, or the failure raised."""
    _authorize(ctx, head.authorization)
    media = (head.content_type or "").split(";", 1)[0].strip().lower()
    binary = not batch and binary_mode.is_binary(media, head.headers)
    seen = _Body()
    try:
        try:
            events = await _events(ctx, head, receive, media, seen, batch=batch, binary=binary)
            try:
                accepted = await ctx.service.ingest(events)
            except IngestError as exc:
                raise to_problem(exc, retry_after_s=ctx.settings.retry_after_s) from exc
        except Problem as problem:
            if binary:
                raise binary_mode.renamed(problem) from problem
            raise
    except Problem as problem:
        reason = rejection_reason(problem)
        ctx.metrics.rejected.labels(reason).inc(seen.counted)
        logger.info(
            "request refused (%s): %s",
            reason,
            problem.detail,
            extra={"reason": reason, "status": problem.status, "event_ids": _ids_of(seen.obj)},
        )
        raise
    appended = accepted.appended
    ctx.metrics.appended.inc(appended)
    if appended < len(accepted.events):
        ctx.metrics.duplicates.inc(len(accepted.events) - appended)
    return Answer(pydantic_core.to_json(_accepted_body(accepted)), appended)


async def _events(
    ctx: IngestContext,
    head: Head,
    receive: Receive,
    media: str,
    seen: _Body,
    *,
    batch: bool,
    binary: bool,
) -> list[Incoming]:
    """The request's events, all valid, or the `Problem` that says what is wrong."""
    settings = ctx.settings
    attributes: dict[str, str] = {}
    if binary:
        binary_mode.check_media_type(media)
        attributes = binary_mode.attributes(head.headers)
    else:
        parsing.check_media_type(media, parsing.BATCH_TYPES if batch else parsing.SINGLE_TYPES)
    body = await parsing.read_body(
        receive,
        content_length=head.content_length,
        limit=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
    )
    if binary:
        seen.obj = binary_mode.structured(attributes, parsing.parse_json(body), media)
        return [incoming(parsing.parse_event(seen.obj))]
    events = parsing.parse_valid_body(body, batch=batch, max_events=settings.max_batch_events)
    if events is not None:
        seen.obj, seen.counted = events, len(events)
        return events
    # Something is wrong with the body: find out what, and say so.
    seen.obj = parsing.parse_json(body)
    if not batch:
        return [incoming(parsing.parse_event(seen.obj))]
    if isinstance(seen.obj, list):
        seen.counted = max(1, len(seen.obj))
    return [
        incoming(e) for e in parsing.parse_batch(seen.obj, max_events=settings.max_batch_events)
    ]


def _authorize(ctx: IngestContext, authorization: str | None) -> None:
    """Authenticate and require `events:write`, counting and logging each refusal."""
    try:
        principal = ctx.authenticator.authenticate(authorization, now=utcnow())
        principal.require(AuthScope.EVENTS_WRITE)
    except (AuthenticationError, PermissionDeniedError) as exc:
        reason = "unauthenticated" if isinstance(exc, AuthenticationError) else "forbidden"
        ctx.metrics.rejected.labels(reason).inc()
        logger.info("request refused (%s): %s", reason, exc, extra={"reason": reason})
        raise


def _ids_of(obj: Any) -> list[str]:
    """The ids a refused body carried (for the log), as far as they can be read."""
    items = obj if isinstance(obj, list) else [obj]
    return [
        str(item["id"])[:128] if isinstance(item, dict) else item.id
        for item in items[:LOGGED_IDS]
        if (isinstance(item, dict) and "id" in item) or isinstance(item, Incoming)
    ]


def _accepted_body(accepted: Accepted) -> dict[str, Any]:
    return {
        "accepted": [{"id": e.id, "position": e.position} for e in accepted.events],
        "position": accepted.position.token(),
    }


async def serve(
    ctx: IngestContext, scope: Scope, receive: Receive, send: Send, *, batch: bool
) -> None:
    """One write request, as ASGI: what CorrelationIdMiddleware, InFlightMiddleware and the
    error handlers did for it, around `accept`."""
    headers: Sequence[tuple[bytes, bytes]] = scope["headers"]
    cid = incoming_correlation_id(headers) or os.urandom(16).hex()
    token = correlation_id.set(cid)
    gauge = ctx.metrics.in_flight
    gauge.inc()
    body = _Receiver(receive)
    try:
        try:
            answer = await accept(ctx, head_of(headers), body, batch=batch)
        except Exception as exc:  # noqa: BLE001 - every failure becomes its problem response
            problem = _problem_of(exc, scope)
            await _problem(problem, scope, receive, send, cid)
            if not body.ended:
                await _drain(body, ctx.settings.max_body_bytes)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-length", str(len(answer.body)).encode()),
                    *_ACCEPTED_HEADERS,
                    # The body keeps its documented shape; how many events this request
                    # appended (the rest were already in the log) travels beside it.
                    (b"chancery-appended", str(answer.appended).encode()),
                    (_CORRELATION, cid.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})
    finally:
        gauge.dec()
        correlation_id.reset(token)


def _problem_of(exc: Exception, scope: Scope) -> Problem:
    """The problem each failure is answered with: as `install_error_handlers` maps them."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, AuthenticationError):
        return Problem(401, "Unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, PermissionDeniedError):
        return Problem(403, "Forbidden", str(exc))
    if isinstance(exc, ClientDisconnect):
        # The client left before its body was read: a client error, nobody to answer.
        logger.info("client left mid-request: %s %s", scope["method"], scope["path"])
        return Problem(400, "Bad Request", "the client disconnected mid-request")
    logger.exception("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
    return Problem(500, "Internal Server Error", "an unexpected error occurred")


async def _problem(problem: Problem, scope: Scope, receive: Receive, send: Send, cid: str) -> None:
    response = JSONResponse(
        problem.body(scope["path"]),
        status_code=problem.status,
        headers=dict(problem.headers),
        media_type=PROBLEM_JSON,
    )
    response.raw_headers.append((_CORRELATION, cid.encode()))
    await response(scope, receive, send)
