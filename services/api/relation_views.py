"""Relations: the state of a pair now, as of a day, as known at a time; a country's pairs.

Three ways to one `RelationState`, all through the domain's code:
- now and `as_of=D`: the pair's ledger (each partition's share merged) read by
  `view(...)`, exactly as the projector builds it. The ledger keeps history by day and by
  entry, so `as_of` costs what "now" costs: it grows with the pair's distinct days and
  status/partnership/plan entries, not with its events (contacts: two per partition);
- `known_at=K`: what Chancery knew at K is not in the ledger (it holds only what counts
  now), so the pair's events are refolded with `fold_relation(known_at=K)`: it costs
  O(events of the pair), plus a scan for each retraction of one of them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from chancery.answers import RelationBody, RelationItem, RelationSort
from chancery.domain import RelationLedger, RelationState, fold_relation, view
from chancery.domain.relations import Pair

from . import cursors
from .body_cache import BodyCache
from .params import invalid
from .reader import Page, ReadResult, RelationReads
from .representation import payload_of


def _fields(state: RelationState, known_at: datetime | None) -> dict[str, Any]:
    return {
        "pair": state.pair.key,
        "parties": (state.pair.first, state.pair.second),
        "as_of": state.as_of,
        "known_at": known_at,
        "status": state.status,
        "status_since": str(state.status_since) if state.status_since else None,
        "status_events": state.status_event_ids,
        "mediator": state.mediator,
        "partnership": state.partnership,
        "score": state.score,
        "climate": state.climate,
        "event_count": state.event_count,
        "quad_counts": state.quad_counts,
        "last_contact": state.last_contact,
        "next_contact": state.next_contact,
    }


def body_of(state: RelationState, *, known_at: datetime | None = None) -> RelationBody:
    # The values come validated from the domain: construct without validating again.
    return RelationBody.model_construct(position="", **_fields(state, known_at))


def item_of(state: RelationState, *, known_at: datetime | None = None) -> RelationItem:
    return RelationItem.model_construct(**_fields(state, known_at))


async def relation(
    reader: RelationReads,
    pair: Pair,
    *,
    today: date,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> ReadResult[RelationState]:
    if known_at is not None:
        history = await reader.pair_history(pair, known_at)
        state = fold_relation(pair, history.value, today=today, as_of=as_of, known_at=known_at)
        return ReadResult(state, history.snapshot)
    reading = await reader.pair_ledgers([pair], as_of or today)
    ledger = RelationLedger({pair: reading.value[pair]})
    return ReadResult(view(pair, ledger, today=today, as_of=as_of), reading.snapshot)


async def relation_payload(
    reader: RelationReads,
    bodies: BodyCache,
    pair: Pair,
    *,
    today: date,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> ReadResult[bytes]:
    """The relation's body as JSON (without position), from the body cache when the read
    models it was computed from are unchanged (the ledger read tells, in its round trip)."""
    key = (pair.key, today, as_of, known_at)
    if known_at is None:
        reading = await reader.pair_ledgers([pair], as_of or today)
        payload = bodies.get(key, reading.snapshot)
        if payload is None:
            ledger = RelationLedger({pair: reading.value[pair]})
            state = view(pair, ledger, today=today, as_of=as_of)
            payload = payload_of(body_of(state))
            bodies.put(key, reading.snapshot, payload)
        return ReadResult(payload, reading.snapshot)
    answer = await relation(reader, pair, today=today, known_at=known_at, as_of=as_of)
    return ReadResult(payload_of(body_of(answer.value, known_at=known_at)), answer.snapshot)


def _sort_value(state: RelationState, sort: RelationSort) -> float | str:
    if sort == "score":
        return state.score
    if sort == "event_count":
        return float(state.event_count)
    contact = state.last_contact
    return contact.when.sort_key() if contact is not None else ""


def _after(value: float | str, partner: str, cursor: tuple[float | str, str], desc: bool) -> bool:
    """Whether (value, partner) comes after the cursor in the listing's order."""
    cv, cp = cursor
    if value == cv:
        return partner > cp
    if isinstance(value, str) and isinstance(cv, str):
        return value < cv if desc else value > cv
    if not isinstance(value, str) and not isinstance(cv, str):
        return value < cv if desc else value > cv
    # a text where the sort has numbers, or the reverse: not a cursor of this sort
    raise invalid("cursor", "the cursor belongs to another sort order", "cursor")


async def relations_of(
    reader: RelationReads,
    country: str,
    *,
    today: date,
    sort: RelationSort,
    descending: bool,
    cursor: str | None,
    limit: int,
) -> ReadResult[Page[RelationState]]:
    """Every pair that includes `country`, ordered by `sort` (ties by partner code).

    Costs one relation read per partner (pipelined in one round trip), then a sort.
    """
    fields = cursors.decode(cursor, "relations")
    start: tuple[float | str, str] | None = None
    if fields is not None:
        if fields.get("sort") != sort or fields.get("desc") != descending:
            raise invalid("cursor", "the cursor belongs to another sort order", "cursor")
        value = fields.get("value")
        if not isinstance(value, float | int | str) or isinstance(value, bool):
            raise invalid("cursor", "not a cursor this API issued", "cursor")
        start = (float(value) if not isinstance(value, str) else value, str(fields.get("after")))
    partners = await reader.partners(country)
    pairs = [Pair.of(country, other) for other in sorted(partners.value)]
    ledgers = await reader.pair_ledgers(pairs, today)
    states = [
        view(pair, RelationLedger({pair: ledgers.value[pair]}), today=today) for pair in pairs
    ]
    keyed = sorted(
        ((_sort_value(s, sort), s.pair.other(country), s) for s in states),
        key=lambda item: item[1],
    )
    keyed.sort(key=lambda item: item[0], reverse=descending)
    if start is not None:
        keyed = [k for k in keyed if _after(k[0], k[1], start, descending)]
    page = [state for _, _, state in keyed[:limit]]
    snapshot = partners.snapshot.later(ledgers.snapshot)
    return ReadResult(Page(page, len(keyed) > limit), snapshot)


def next_cursor(
    page: Page[RelationState], country: str, sort: RelationSort, descending: bool
) -> str | None:
    if not page.more or not page.items:
        return None
    last = page.items[-1]
    return cursors.encode(
        "relations",
        sort=sort,
        desc=descending,
        value=_sort_value(last, sort),
        after=last.pair.other(country),
    )
