"""A pair's score through time: given these events, the score at the end of each period."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chancery.domain import Pair, build_ledger, view
from chancery.domain.scores import count_periods, first_day, period_of, periods, score_series

from .builders import coded, incident, meeting, statement

pytestmark = pytest.mark.unit

PAIR = Pair.of("CHN", "USA")
TODAY = date(2023, 6, 30)

EVENTS = [
    incident("balloon", "2023-02-04", "CHN", "USA"),
    statement("blame", "2023-02-06", "CHN", "criticise", "USA"),
    meeting("vienna", "2023-05-10/2023-05-11", "CHN", "USA"),
    coded("trade", "2023-05-12", "CHN", "USA", "057"),
]


def test_each_point_is_the_score_the_view_gives_as_of_its_last_day() -> None:
    ledger = build_ledger(EVENTS)
    series = score_series(ledger.pair(PAIR).days, date(2023, 1, 1), TODAY, "week")
    for point in series:
        state = view(PAIR, ledger, today=TODAY, as_of=point.end)
        if state.event_count == 0:
            assert point.score is None
            assert point.climate is None
        else:
            assert point.score == state.score
            assert point.climate == state.climate
        assert point.events_to_date == state.event_count


def test_the_series_ends_on_the_relation_s_score_today() -> None:
    ledger = build_ledger(EVENTS)
    series = score_series(ledger.pair(PAIR).days, date(2023, 1, 1), TODAY, "month")
    assert series[-1].score == view(PAIR, ledger, today=TODAY).score
    assert series[-1].end == TODAY


def test_months_count_their_own_events_and_keep_the_score_through_quiet_ones() -> None:
    series = score_series(build_ledger(EVENTS).pair(PAIR).days, date(2023, 1, 15), TODAY, "month")
    assert [p.period for p in series] == [
        "2023-01",
        "2023-02",
        "2023-03",
        "2023-04",
        "2023-05",
        "2023-06",
    ]
    assert [p.events for p in series] == [0, 2, 0, 0, 2, 0]
    assert [p.events_to_date for p in series] == [0, 2, 2, 2, 4, 4]
    assert series[0].score is None
    assert series[1].score is not None
    assert series[1].score < 0
    assert series[2].score == series[3].score == series[1].score
    assert series[0].start == date(2023, 1, 1)  # whole periods, though `start` is mid-month
    assert series[1].end == date(2023, 2, 28)


def test_events_before_the_range_count_in_the_score_not_in_the_period() -> None:
    series = score_series(build_ledger(EVENTS).pair(PAIR).days, date(2023, 3, 1), TODAY, "month")
    assert series[0].period == "2023-03"
    assert series[0].events == 0
    assert series[0].events_to_date == 2
    assert series[0].score is not None


def test_iso_weeks_cross_the_year_as_iso_8601_names_them() -> None:
    assert period_of(date(2021, 1, 1), "week") == ("2020-W53", date(2020, 12, 28), date(2021, 1, 3))
    assert period_of(date(2023, 5, 15), "week") == (
        "2023-W20",
        date(2023, 5, 15),
        date(2023, 5, 21),
    )
    assert period_of(date(2024, 2, 10), "month") == ("2024-02", date(2024, 2, 1), date(2024, 2, 29))


def test_first_day_is_the_first_day_with_an_event() -> None:
    assert first_day(build_ledger(EVENTS).pair(PAIR).days) == date(2023, 2, 4)
    assert first_day({}) is None


@given(
    st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(min_value=0, max_value=2000),
    st.sampled_from(["week", "month"]),
)
def test_count_periods_counts_what_periods_yields(start: date, span: int, bucket: str) -> None:
    end = start + timedelta(days=span)
    made = list(periods(start, end, bucket))  # type: ignore[arg-type]
    assert count_periods(start, end, bucket) == len(made)  # type: ignore[arg-type]
    assert all(b[1] == a[2] + timedelta(days=1) for a, b in itertools.pairwise(made))
