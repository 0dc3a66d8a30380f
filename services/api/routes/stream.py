"""Route: the live stream of applied events (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from chancery.positions import Position
from services.api import params, sse_stream

from .common import Context, StreamPrincipal, StreamSlot

router = APIRouter(tags=["stream"])

SSE_EXAMPLE = (
    ": chancery stream\nid: chancery.events@0:41,3:7\nretry: 2000\n\n"
    'data: {"specversion":"1.0","id":"wang-yi-sullivan-vienna-talks",'
    '"source":"https://chancery.example/seeds/article-li-hui-2023-05-12",'
    '"type":"diplomacy.meeting.held","time":"2023-05-12T00:00:00Z",...}\n'
    "id: chancery.events@0:41,3:8\n\n"
    ": ping\n\n"
)

STREAM_DESCRIPTION = """
Every event as the projector applies it, as Server-Sent Events. Each message's `data` is the
CloudEvent as the log holds it; its `id` is a position token (partition -> offset).

- **Resume**: reconnect with `Last-Event-ID` (EventSource does it by itself) or `?after=` set
  to the last id received: every partition continues right after it, with no gap and no
  duplicate. Partitions the token leaves out start at their beginning. Without either the
  stream starts now; the first message (a comment) already carries the start as its id.
- **Filters**: `type`, `country`, `pair` (`CHN-USA`) and `person` (`li-hui`); repeat one or
  comma-separate its values (any of them), and combine kinds (all of them). Webhook
  subscriptions take the same filters. The position still moves over filtered-out events,
  and keep-alive pings carry it as their id when it moved.
- **Keep-alive**: a `: ping` comment after `CHANCERY_STREAM_PING_S` (15 s) of silence.
- **Limits**: at most `CHANCERY_MAX_STREAMS_PER_CLIENT` (5) open streams per API key, JWT
  subject, or (auth disabled) client address: one more is 429.
- **Auth from a browser**: EventSource cannot send headers, so `?access_token=` is accepted
  here (and only here); prefer a short-lived JWT for it.
- A resume point older than the stream keeps is refused with 410.
"""


async def _start(
    ctx: Context,
    _: StreamPrincipal,
    after: Annotated[
        str | None,
        Query(
            description="Resume after this position (an SSE id); Last-Event-ID wins if both.",
            examples=["chancery.events@0:41,3:7"],
        ),
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this SSE id.")
    ] = None,
) -> dict[int, int | None]:
    snapshot = await ctx.reader.snapshot()
    token = last_event_id or after
    resume = None
    if token:
        field = "Last-Event-ID" if last_event_id else "after"
        if token.strip() == f"{ctx.reader.topic}@":  # an id given before any event was applied
            resume = Position(ctx.reader.topic, {})
        else:
            resume = params.position(
                token, topic=ctx.reader.topic, partitions=snapshot.partitions, field=field
            )
        await ctx.reader.stream_retained(dict(resume.offsets))
    return sse_stream.start_of(resume, snapshot)


@router.get(
    "/v1/stream",
    response_class=StreamingResponse,
    summary="Live events (Server-Sent Events), resumable with Last-Event-ID",
    description=STREAM_DESCRIPTION,
    responses={
        200: {
            "description": "A stream of Server-Sent Events.",
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": SSE_EXAMPLE}
            },
        },
        401: {"description": "Missing or invalid credentials."},
        403: {"description": "The credentials lack the scope events:read."},
        410: {"description": "The resume point is older than what the stream keeps."},
        422: {"description": "A bad filter or resume position."},
        429: {"description": "Too many open streams for this client."},
        503: {"description": "The read models are being rebuilt."},
    },
)
async def live_stream(
    *,
    ctx: Context,
    _: StreamSlot,
    start: Annotated[dict[int, int | None], Depends(_start)],
    types: Annotated[
        list[str] | None,
        Query(alias="type", description="Event types to deliver (`meeting.held`, ...)."),
    ] = None,
    country: Annotated[
        list[str] | None,
        Query(description="Deliver only events involving one of these actors."),
    ] = None,
    pair: Annotated[
        list[str] | None,
        Query(
            description="Deliver only events of one of these pairs' relations (`CHN-USA`).",
            examples=["CHN-USA"],
        ),
    ] = None,
    person: Annotated[
        list[str] | None,
        Query(description="Deliver only events naming one of these people (`li-hui`)."),
    ] = None,
) -> StreamingResponse:
    chosen = params.event_filter(types, country, pair, person)
    messages = sse_stream.events(ctx.reader, start, chosen, ping_s=ctx.settings.stream_ping_s)
    # A plain streaming response, not FastAPI's generator mode: that one's keep-alive task
    # raises BrokenResourceError on an ordinary client disconnect (fastapi discussion
    # #15725) and its ping interval is fixed; our generator pings at stream_ping_s itself.
    return StreamingResponse(
        sse_stream.encoded(messages),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
