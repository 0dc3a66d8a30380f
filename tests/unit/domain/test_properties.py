"""Properties of the folds, over generated events of every type.

- any order, any duplicates: the same state;
- a retraction removes exactly the retracted event's effect;
- as of day D: the fold of the events that occurred by D;
- as known at time K: the fold of the events recorded by K;
- a late event lands where it belongs in time;
- the ledgers of the log's partitions merge into the ledger of the whole log, and the
  projector's incremental path (apply, remove on retraction) reaches the same ledger.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chancery.contract import Event, EventRetracted, TripPayload, event_key
from chancery.domain import (
    Itinerary,
    Pair,
    RelationLedger,
    RelationState,
    build_ledger,
    effective,
    fold_itinerary,
    fold_relation,
    merge,
    occurred_by,
    pair_timeline,
    pairs_of,
    recorded_by,
    relation_effects,
    view,
)
from chancery.domain.relations import STATUS_AFTER
from tests.unit.contract.strategies import (
    LAST_DAY,
    SOURCES,
    days,
    histories,
    log_key,
    retraction,
    stamped,
)

from .builders import relations_changed

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=80, deadline=None)
TODAY = date(2023, 5, 12)


def pairs_in(events: Iterable[Event]) -> list[Pair]:
    return sorted({pair for event in events for pair in pairs_of(event)}, key=str)


def people_in(events: Iterable[Event]) -> list[str]:
    return sorted({e.data.traveller.id for e in events if isinstance(e.data, TripPayload)})


def relations(events: list[Event], pairs: list[Pair], **when: Any) -> dict[Pair, RelationState]:
    return {pair: fold_relation(pair, events, **when) for pair in pairs}


def itineraries(events: list[Event], people: list[str], **when: Any) -> dict[str, Itinerary]:
    return {person: fold_itinerary(person, events, **when) for person in people}


# --- any order, any duplicates ----------------------------------------------------------------


@PROPERTY
@given(histories(), st.data())
def test_any_permutation_with_duplicates_folds_to_the_same_state(
    events: list[Event], data: st.DataObject
) -> None:
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=4)) if events else []
    arrival = data.draw(st.permutations(events + duplicates))
    pairs, people = pairs_in(events), people_in(events)
    assert relations(arrival, pairs, today=TODAY) == relations(events, pairs, today=TODAY)
    assert itineraries(arrival, people) == itineraries(events, people)
    assert build_ledger(effective(arrival)) == build_ledger(effective(events))


# --- retraction -------------------------------------------------------------------------------


@PROPERTY
@given(histories(min_size=1, retractions=False), st.data())
def test_a_retraction_removes_exactly_the_retracted_events_effect(
    events: list[Event], data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(events))
    fix = retraction(
        "fix", data.draw(st.sampled_from(SOURCES)), target, datetime(2023, 7, 2, tzinfo=UTC)
    )
    without = [e for e in events if e is not target]
    pairs, people = pairs_in(events), people_in(events)

    assert relations([*events, fix], pairs, today=TODAY) == relations(without, pairs, today=TODAY)
    assert itineraries([fix, *events], people) == itineraries(without, people)

    ledger = build_ledger(events)
    for effect in relation_effects(target).values():
        ledger.remove(effect)
    assert ledger == build_ledger(without)


# --- as of D, known at K ------------------------------------------------------------------------


@PROPERTY
@given(histories(), days, days)
def test_as_of_d_is_the_fold_of_the_events_occurred_by_d(
    events: list[Event], as_of: date, today: date
) -> None:
    by_d = occurred_by(events, as_of)
    pairs, people = pairs_in(events), people_in(events)
    assert relations(events, pairs, today=today, as_of=as_of) == relations(by_d, pairs, today=as_of)
    assert itineraries(events, people, as_of=as_of) == itineraries(by_d, people)


recorded_times = st.datetimes(
    min_value=datetime(2023, 1, 1),
    max_value=datetime(2023, 12, 31),
    timezones=st.just(UTC),
)


@PROPERTY
@given(histories(), st.data(), recorded_times)
def test_known_at_k_is_the_fold_of_the_events_recorded_by_k(
    events: list[Event], data: st.DataObject, known_at: datetime
) -> None:
    times = data.draw(st.lists(recorded_times, min_size=len(events), max_size=len(events)))
    log = stamped(events, times)
    known = recorded_by(log, known_at)
    # corrections recorded after K change nothing about what was known at K
    targets = data.draw(st.lists(st.sampled_from(log), max_size=2, unique_by=key_of)) if log else []
    corrections: list[Event] = [
        retraction(f"later{i}", SOURCES[0], target, known_at + timedelta(days=1))
        for i, target in enumerate(targets)
    ]
    later = stamped(corrections, [known_at + timedelta(seconds=1)] * len(corrections))
    pairs, people = pairs_in(events), people_in(events)
    assert relations([*log, *later], pairs, today=TODAY, known_at=known_at) == relations(
        known, pairs, today=TODAY
    )
    assert itineraries([*log, *later], people, known_at=known_at) == itineraries(known, people)


def key_of(event: Event) -> str:
    return event.key


# --- late events ---------------------------------------------------------------------------------

CHANGES = ("established", "restored", "upgraded", "downgraded", "suspended", "severed")


@PROPERTY
@given(
    st.lists(st.tuples(days, st.sampled_from(CHANGES)), min_size=1, max_size=6),
    st.sampled_from(CHANGES),
    st.integers(1, 60),
)
def test_a_late_status_change_lands_where_it_belongs_in_time(
    changes: list[tuple[date, str]], late_change: str, earlier_by: int
) -> None:
    pair = Pair.of("IRN", "SAU")
    known = [
        relations_changed(f"s{i}", day.isoformat(), "IRN", "SAU", change)
        for i, (day, change) in enumerate(changes)
    ]
    late_day = min(day for day, _ in changes) - timedelta(days=earlier_by)
    late = relations_changed("late", late_day.isoformat(), "SAU", "IRN", late_change)
    after = fold_relation(pair, [*known, late], today=LAST_DAY)
    before = fold_relation(pair, known, today=LAST_DAY)
    # it does not become the current status...
    assert after.status == before.status
    assert after.status_event_ids[-1] == before.status_event_ids[-1]
    # ...it is the status as of its own day, and it opens the pair's timeline
    as_of_late = fold_relation(pair, [*known, late], today=LAST_DAY, as_of=late_day)
    assert as_of_late.status == STATUS_AFTER[late_change]  # type: ignore[index]
    assert pair_timeline(pair, [*known, late])[0] == late


# --- partitions and the projector ------------------------------------------------------------


def partitions(events: list[Event], count: int) -> list[list[Event]]:
    """The events split as the log splits them: by partition key, a retraction with its target."""
    parts: dict[int, list[Event]] = {}
    for event in events:
        parts.setdefault(zlib.crc32(log_key(event, events).encode()) % count, []).append(event)
    return list(parts.values())


@PROPERTY
@given(histories(), st.integers(1, 6), st.data())
def test_the_partitions_ledgers_merge_into_the_ledger_of_the_whole_log(
    events: list[Event], count: int, data: st.DataObject
) -> None:
    shares = [build_ledger(effective(part)) for part in partitions(events, count)]
    shares = data.draw(st.permutations(shares))
    merged = functools.reduce(merge, shares, RelationLedger())
    whole = build_ledger(effective(events))
    assert merged == whole
    for pair in pairs_in(events):
        assert view(pair, merged, today=TODAY) == fold_relation(pair, events, today=TODAY)


@PROPERTY
@given(histories(), st.data())
def test_merge_of_any_split_is_the_ledger_of_the_union(
    events: list[Event], data: st.DataObject
) -> None:
    chosen = effective(events)
    sides = data.draw(st.lists(st.integers(0, 2), min_size=len(chosen), max_size=len(chosen)))
    a, b, c = ([e for e, side in zip(chosen, sides, strict=True) if side == s] for s in range(3))
    la, lb, lc = build_ledger(a), build_ledger(b), build_ledger(c)
    assert merge(la, lb) == merge(lb, la) == build_ledger([*a, *b])
    assert merge(merge(la, lb), lc) == merge(la, merge(lb, lc)) == build_ledger(chosen)


def project(arrival: Iterable[Event]) -> RelationLedger:
    """What the projector does, one record at a time, in arrival order.

    A duplicate is dropped; a retraction removes its target's effect if the target was
    applied, and otherwise remembers it so a late target is never applied; a retraction of
    a retraction is void.
    """
    ledger = RelationLedger()
    seen: dict[str, Event] = {}
    retracted: set[str] = set()
    for event in arrival:
        if event.key in seen:
            continue
        seen[event.key] = event
        if isinstance(event, EventRetracted):
            target = event_key(event.data.target.source, event.data.target.id)
            applied = seen.get(target)
            if isinstance(applied, EventRetracted) or target in retracted:
                continue
            retracted.add(target)
            if applied is not None:
                for effect in relation_effects(applied).values():
                    ledger.remove(effect)
        elif event.key not in retracted:
            for effect in relation_effects(event).values():
                ledger.apply(effect)
    return ledger


@PROPERTY
@given(histories(), st.data())
def test_the_projectors_incremental_path_reaches_the_folds_ledger(
    events: list[Event], data: st.DataObject
) -> None:
    # in the log a retraction comes after its target (ingest resolves the target first)
    others = data.draw(st.permutations([e for e in events if not isinstance(e, EventRetracted)]))
    retractions = [e for e in events if isinstance(e, EventRetracted)]
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=3)) if events else []
    assert project([*others, *retractions, *duplicates]) == build_ledger(effective(events))
