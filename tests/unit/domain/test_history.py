"""Order and history: the shared first step of every fold."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from chancery.domain import (
    effective,
    in_order,
    occurred_by,
    occurred_of,
    order_key,
    order_string,
    recorded_by,
    retracted_keys,
    select,
    supersedes,
)

from .builders import SOURCE, coded, meeting, recorded, retraction

pytestmark = pytest.mark.unit


def test_events_order_by_when_they_occurred_then_precision_then_identity() -> None:
    month = meeting("m", "2023-05", "CHN", "USA")
    first_day = meeting("d", "2023-05-01", "CHN", "USA")
    instant = meeting("t", "2023-05-01T08:00:00+00:00", "CHN", "USA")
    april = meeting("a", "2023-04-30", "CHN", "USA")
    same_day_b = meeting("b", "2023-05-01", "CHN", "USA")
    other_source = meeting("a", "2023-05-01", "CHN", "USA")
    other_source = other_source.model_copy(update={"source": "urn:another"})
    ordered = in_order([instant, same_day_b, month, first_day, other_source, april])
    assert [(e.source == SOURCE, e.id) for e in ordered] == [
        (True, "a"),  # 30 April
        (True, "m"),  # the month starts on 1 May, coarsest first
        (True, "b"),  # 1 May, by source then id
        (True, "d"),
        (False, "a"),  # "urn:..." sorts after "https:..."
        (True, "t"),  # an instant of 1 May after the day
    ]
    assert [order_string(e) for e in ordered] == sorted(order_string(e) for e in ordered)


def test_a_retraction_sorts_at_the_time_it_was_reported() -> None:
    fix = retraction("fix", meeting("m", "2023-05", "CHN", "USA"), time="2023-06-02T10:00:00+00:00")
    assert str(occurred_of(fix)) == "2023-06-02T10:00:00+00:00"
    assert order_key(fix)[1:] == (SOURCE, "fix")


def test_effective_keeps_one_event_per_identity() -> None:
    a = meeting("a", "2023-05-10", "CHN", "USA")
    b = coded("b", "2023-05-11", "CHN", "USA", "042")
    assert effective([b, a, b, a, a]) == [a, b]


def test_two_contents_under_one_identity_resolve_the_same_whatever_the_order() -> None:
    one = meeting("a", "2023-05-10", "CHN", "USA", city="Vienna")
    other = meeting("a", "2023-05-10", "CHN", "USA", city="Geneva")
    assert effective([one, other]) == effective([other, one])
    assert len(effective([one, other])) == 1


def test_of_two_copies_of_one_event_the_first_recorded_counts_whatever_the_order() -> None:
    """A retry that ingest re-stamped is the same fact learnt no earlier: `known_at` answers
    follow the copy recorded first, whichever copy comes first in the log."""
    fact = meeting("a", "2023-05-10", "CHN", "USA")
    first = recorded(fact, "2023-05-10T12:00:00+00:00")
    retried = recorded(fact, "2023-05-12T12:00:00+00:00")
    assert effective([retried, first]) == effective([first, retried]) == [first]
    assert supersedes(first, retried)
    assert not supersedes(retried, first)
    assert not supersedes(first, first)
    assert not supersedes(fact, first)  # never accepted by ingest: last
    between = datetime(2023, 5, 11, tzinfo=UTC)
    assert select([retried, first], known_at=between) == [first]


def test_a_retraction_removes_its_target_and_itself() -> None:
    a = meeting("a", "2023-05-10", "CHN", "USA")
    b = meeting("b", "2023-05-11", "CHN", "USA")
    assert effective([a, b, retraction("r", a)]) == [b]
    assert effective([retraction("r", a), b, a]) == [b]  # whichever arrives first
    assert retracted_keys([retraction("r", a)]) == {a.key}


def test_a_retraction_of_a_retraction_is_void() -> None:
    a = meeting("a", "2023-05-10", "CHN", "USA")
    first = retraction("r1", a)
    second = retraction("r2", first)
    assert effective([a, first, second]) == []  # the first still retracts a
    assert effective([second, first, a]) == []
    assert retracted_keys([a, first, second]) == {a.key}


def test_recorded_by_and_occurred_by() -> None:
    a = recorded(meeting("a", "2023-05-10", "CHN", "USA"), "2023-05-11T00:00:00+00:00")
    b = recorded(meeting("b", "2023-05", "CHN", "USA"), "2023-05-20T00:00:00+00:00")
    fix = recorded(retraction("r", a), "2023-06-01T00:00:00+00:00")
    unstamped = meeting("c", "2023-05-01", "CHN", "USA")
    events = [a, b, fix, unstamped]
    assert recorded_by(events, datetime(2023, 5, 20, tzinfo=UTC)) == [a, b]
    assert recorded_by(events, datetime(2023, 5, 10, tzinfo=UTC)) == []
    assert occurred_by(events, date(2023, 5, 1)) == [b, fix, unstamped]  # retractions always kept
    assert select(events, as_of=date(2023, 5, 1)) == [b, unstamped]
    assert select(events, known_at=datetime(2023, 5, 31, tzinfo=UTC)) == [b, a]
