"""Live events as Server-Sent Events, resumable from any SSE id with no gap and no duplicate.

The projector appends every applied event to its partition's Redis stream, with entry id
`<offset>-1`, in the same atomic write as the read models. A subscription is a position
vector (partition -> last offset delivered) read forward with XREAD:

- each SSE `id` is the position token after that event: the vector with the event's
  partition moved to its offset. A client that reconnects with `Last-Event-ID` (browsers do
  it by themselves) or `?after=` resumes every partition exactly after what it got;
- a partition absent from the resume token starts at its beginning: a token this API issued
  leaves a partition out only while it had no event, so nothing is skipped;
- with no token the stream starts "now": after what the read models have applied when the
  request is served. The first message carries that start as its id, so a client that
  disconnects before any event still resumes without a gap;
- filters (type, country, pair, person: `chancery.domain.selection`, the same as webhook
  subscriptions') apply to delivery only: the position moves over filtered-out
  events too, and keep-alive pings carry it as their id when it moved, so a resume does not
  rescan what a filter skipped (browsers keep the id of a message with no data);
- a resume point older than what the stream keeps (it is capped, MAXLEN ~) is refused with
  410 before the stream starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

from fastapi.sse import ServerSentEvent, format_sse_event

from chancery.contract import decode_event
from chancery.domain.selection import EventFilter
from chancery.positions import Position

from .reader import NotReadyError, ReadModelReader, Snapshot, StreamEntry

logger = logging.getLogger(__name__)

BATCH = 200
MAX_BLOCK_S = 5.0
RETRY_MS = 2000


def chosen_entry(chosen: EventFilter, entry: StreamEntry) -> bool:
    """Whether `chosen` takes the entry: by its type and actors (which the stream reader
    took from the stored event), decoding the event only for a filter by pair or person."""
    return chosen.accepts(entry.type, entry.actors, lambda: decode_event(entry.raw))


def start_of(resume: Position | None, snapshot: Snapshot) -> dict[int, int | None]:
    """Per partition, the last offset already delivered (None: deliver from the start)."""
    if resume is None:
        applied = snapshot.applied
        return {p: applied.get(p) for p in range(snapshot.partitions)}
    given = dict(resume.offsets)
    return {p: given.get(p) for p in range(snapshot.partitions)}


def _token(topic: str, position: dict[int, int | None]) -> str | None:
    # Even before any event: "topic@" (nothing delivered) lets a client resume from the start.
    return Position(topic, {p: o for p, o in position.items() if o is not None}).token()


async def events(
    reader: ReadModelReader,
    start: dict[int, int | None],
    chosen: EventFilter,
    *,
    ping_s: float,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """The SSE messages of one subscription, until the client goes or the models vanish."""
    now = clock or asyncio.get_running_loop().time
    position = dict(start)
    topic = reader.topic
    sent = _token(topic, position)
    yield ServerSentEvent(comment="chancery stream", id=sent, retry=RETRY_MS)
    next_ping = now() + ping_s
    while True:
        block_s = max(0.001, min(next_ping - now(), MAX_BLOCK_S))
        try:
            batch = await reader.stream_read(position, block_ms=int(block_s * 1000), count=BATCH)
        except NotReadyError:
            yield ServerSentEvent(event="error", data={"error": "read models unavailable"})
            return
        for entry in batch.entries:
            position[entry.partition] = entry.offset
            if chosen_entry(chosen, entry):
                sent = _token(topic, position)
                yield ServerSentEvent(raw_data=entry.raw.decode(), id=sent)
                next_ping = now() + ping_s
        if now() >= next_ping:
            try:
                await reader.snapshot()  # follows a version flip; fails if the models vanished
            except NotReadyError:
                yield ServerSentEvent(event="error", data={"error": "read models unavailable"})
                return
            current = _token(topic, position)
            yield ServerSentEvent(comment="ping", id=current if current != sent else None)
            sent = current
            next_ping = now() + ping_s


async def encoded(messages: AsyncIterator[ServerSentEvent]) -> AsyncIterator[bytes]:
    """The messages in the SSE wire format."""
    async for m in messages:
        data = m.raw_data if m.raw_data is not None else None
        if data is None and m.data is not None:
            data = json.dumps(m.data, separators=(",", ":"))
        yield format_sse_event(
            data_str=data, event=m.event, id=m.id, retry=m.retry, comment=m.comment
        )
