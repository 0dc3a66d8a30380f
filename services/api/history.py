"""Relations through time: a pair's score series, a pair's record as known at a time, and a
country's relations on a day. What the Atlas shows, for any client.

All three are built from reads the API already makes, through the domain's code:
- the series reads the pair's ledger (its day buckets) as of the reference day, or, with
  `known_at`, refolds the pair's events recorded by then (`chancery.domain.scores`);
- the record reads the pair's history as known at a time (`pair_history`, which brings
  retracted events with their retractions), so a retracted event is listed and marked
  rather than left out: O(events of the pair) per page;
- a country's relations on a day read every partner's ledger as of that day in one
  pipelined read, or, with `known_at`, refold each partner's history (O(events of the
  country's pairs)). Partners come from the current read models: a partner known at
  `known_at` only through events retracted since is not listed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from typing import Literal

from chancery.answers import (
    CountryRelationsBody,
    RecordBody,
    RecordItem,
    RelationSort,
    Retraction,
    ScoreSeriesBody,
)
from chancery.contract import Event, EventRetracted, encode_event, event_key
from chancery.domain import (
    DayBucket,
    RelationLedger,
    RelationState,
    build_ledger,
    effective,
    fold_relation,
    occurred_by,
    order_string,
    pairs_of,
    recorded_by,
    retracted_keys,
    view,
)
from chancery.domain.ordering import occurred_of
from chancery.domain.relations import Pair
from chancery.domain.scores import Bucket, count_periods, first_day, score_series

from . import cursors
from .params import invalid
from .reader import ReadModelReader, ReadResult
from .relation_views import item_of

MAX_POINTS = 1000
"""Points one series may have: twenty years of weeks, eighty of months."""


# --- the score series --------------------------------------------------------------------------


async def _days(
    reader: ReadModelReader, pair: Pair, reference: date, known_at: datetime | None
) -> ReadResult[dict[date, DayBucket]]:
    if known_at is None:
        reading = await reader.pair_ledgers([pair], reference)
        return ReadResult(dict(reading.value[pair].days), reading.snapshot)
    history = await reader.pair_history(pair, known_at)
    ledger = build_ledger(
        e for e in effective(recorded_by(history.value, known_at)) if pair in pairs_of(e)
    )
    return ReadResult(dict(ledger.pair(pair).days), history.snapshot)


async def score_series_of(
    reader: ReadModelReader,
    pair: Pair,
    *,
    today: date,
    bucket: Bucket,
    start: date | None,
    end: date | None,
    as_of: date | None,
    known_at: datetime | None,
) -> ReadResult[ScoreSeriesBody]:
    reference = as_of or today
    last = min(end, reference) if end is not None else reference
    reading = await _days(reader, pair, reference, known_at)
    days = {d: b for d, b in reading.value.items() if d <= last}
    first = start if start is not None else (first_day(days) or last)
    if first > last:
        field = "from" if start is not None else "to"
        raise invalid(field, f"the series would start on {first} and end on {last}")
    n = count_periods(first, last, bucket)
    if n > MAX_POINTS:
        raise invalid(
            "from",
            f"{n} {bucket}s is more than {MAX_POINTS} points: narrow from/to, or use "
            f"bucket={'month' if bucket == 'week' else bucket} for a longer span",
        )
    body = ScoreSeriesBody(
        pair=pair.key,
        parties=(pair.first, pair.second),
        bucket=bucket,
        start=first,
        end=last,
        as_of=as_of,
        known_at=known_at,
        points=score_series(days, first, last, bucket),
    )
    return ReadResult(body, reading.snapshot)


# --- the record: the pair's events as known at a time, retracted ones marked --------------------


def _retractions(events: list[Event]) -> dict[str, EventRetracted]:
    """Target key -> the retraction that counts (see `history.retracted_keys`)."""
    counted = retracted_keys(events)
    found: dict[str, EventRetracted] = {}
    for event in events:
        if isinstance(event, EventRetracted):
            target = event_key(event.data.target.source, event.data.target.id)
            kept = found.get(target)
            if target in counted and (kept is None or _earlier(event, kept)):
                found[target] = event
    return found


def _earlier(a: EventRetracted, b: EventRetracted) -> bool:
    return (a.recordedtime or _NEVER, a.source, a.id) < (b.recordedtime or _NEVER, b.source, b.id)


_NEVER = datetime.max.replace(tzinfo=UTC)


async def record_of(
    reader: ReadModelReader,
    pair: Pair,
    *,
    now: datetime,
    as_of: date | None,
    known_at: datetime | None,
    descending: bool,
    cursor: str | None,
    limit: int,
) -> ReadResult[RecordBody]:
    known = known_at or now
    order: Literal["asc", "desc"] = "desc" if descending else "asc"
    query_id = f"{pair.key}|{as_of}|{known_at}|{order}"
    after = cursors.resume_after(cursor, "record", query_id, other="record or order")
    history = await reader.pair_history(pair, known)
    known_events = recorded_by(history.value, known)
    retractions = _retractions(known_events)
    # Every event of the pair, retracted or not: dedupe without applying the retractions.
    listed = [
        e
        for e in effective(e for e in known_events if not isinstance(e, EventRetracted))
        if pair in pairs_of(e)
    ]
    if as_of is not None:
        listed = occurred_by(listed, as_of)
    keyed = sorted(((order_string(e), e) for e in listed), key=lambda k: k[0], reverse=descending)
    total = len(keyed)
    retracted_count = sum(1 for _, e in keyed if e.key in retractions)
    if after is not None:
        keyed = [k for k in keyed if (k[0] < after if descending else k[0] > after)]
    page = keyed[:limit]
    items = []
    for _, event in page:
        retraction = retractions.get(event.key)
        items.append(
            RecordItem(
                occurred=str(occurred_of(event)),
                recorded_at=event.recordedtime,
                retracted=retraction is not None,
                retraction=Retraction(
                    event=retraction.ref,
                    recorded_at=retraction.recordedtime,
                    reason=retraction.data.reason,
                )
                if retraction is not None
                else None,
                event=json.loads(encode_event(event)),
            )
        )
    next_cursor = (
        cursors.encode("record", q=query_id, m=page[-1][0]) if len(keyed) > limit else None
    )
    body = RecordBody(
        pair=pair.key,
        parties=(pair.first, pair.second),
        as_of=as_of,
        known_at=known_at,
        order=order,
        total=total,
        retracted=retracted_count,
        items=items,
        next_cursor=next_cursor,
    )
    return ReadResult(body, history.snapshot)


# --- a country's relations on a day, as known at a time -----------------------------------------


def _has_any(state: RelationState) -> bool:
    """Whether anything at all is known of the pair on the day read (not just a neutral 0)."""
    return bool(
        state.event_count
        or state.status != "unknown"
        or state.partnership
        or state.last_contact
        or state.next_contact
    )


def _sort_value(state: RelationState, sort: RelationSort) -> float | str:
    if sort == "score":
        return state.score
    if sort == "event_count":
        return float(state.event_count)
    return state.last_contact.when.sort_key() if state.last_contact is not None else ""


async def country_relations(
    reader: ReadModelReader,
    country: str,
    *,
    today: date,
    as_of: date | None,
    known_at: datetime | None,
    sort: RelationSort,
    descending: bool,
) -> ReadResult[CountryRelationsBody]:
    partners = await reader.partners(country)
    pairs = [Pair.of(country, other) for other in sorted(partners.value)]
    snapshot = partners.snapshot
    if known_at is None:
        ledgers = await reader.pair_ledgers(pairs, as_of or today)
        snapshot = snapshot.later(ledgers.snapshot)
        states = [
            view(pair, RelationLedger({pair: ledgers.value[pair]}), today=today, as_of=as_of)
            for pair in pairs
        ]
    else:
        histories = await asyncio.gather(*(reader.pair_history(p, known_at) for p in pairs))
        states = []
        for pair, history in zip(pairs, histories, strict=True):
            snapshot = snapshot.later(history.snapshot)
            states.append(
                fold_relation(pair, history.value, today=today, as_of=as_of, known_at=known_at)
            )
    kept = sorted((s for s in states if _has_any(s)), key=lambda s: s.pair.other(country))
    kept.sort(key=lambda s: _sort_value(s, sort), reverse=descending)
    body = CountryRelationsBody(
        country=country,
        as_of=as_of or today,
        known_at=known_at,
        sort=sort,
        order="desc" if descending else "asc",
        items=[item_of(s, known_at=known_at) for s in kept],
    )
    return ReadResult(body, snapshot)
