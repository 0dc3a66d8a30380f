"""Timelines: a pair's or an actor's effective events, in the order they occurred.

Each partition keeps its share of a timeline as a lexicographic sorted set whose members
start with the domain's total order (`order_string`); a page is the k-way merge of the
partitions' sets, read in chunks, filtered by type and bounded by day. Retracted events are
not in the sets: a timeline shows what counts now. Events are loaded from the partition
that holds them, with their position in the log.
"""

from __future__ import annotations

import json

from chancery import keyspace
from chancery.answers import LoggedEvent, TimelineBody
from chancery.positions import Position

from . import cursors
from .params import invalid
from .reader import Page, ReadResult, StoredEvent, TimelineEntry, TimelineQuery, TimelineReads


def logged(topic: str, stored: StoredEvent) -> LoggedEvent:
    return LoggedEvent(
        log_position=Position.at(topic, stored.partition, stored.offset).token(),
        retracted=stored.retracted,
        event=json.loads(stored.raw),
    )


def decode_cursor(cursor: str | None, query_id: str) -> str | None:
    member = cursors.resume_after(cursor, "timeline", query_id, other="timeline or order")
    if member is None:
        return None
    try:
        keyspace.member_prefix(member)
    except ValueError:
        raise invalid("cursor", "not a cursor this API issued", "cursor") from None
    return member


def encode_cursor(page: Page[TimelineEntry], query_id: str) -> str | None:
    if not page.more or not page.items:
        return None
    return cursors.encode("timeline", q=query_id, m=page.items[-1].member)


async def timeline(reader: TimelineReads, query: TimelineQuery) -> ReadResult[Page[TimelineEntry]]:
    return await reader.timeline(query)


def body_of(topic: str, name: str, page: Page[TimelineEntry], query_id: str) -> TimelineBody:
    return TimelineBody(
        timeline=name,
        items=[logged(topic, entry.stored) for entry in page.items],
        next_cursor=encode_cursor(page, query_id),
    )
