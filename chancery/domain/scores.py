"""A pair's score through time: the score as of the end of each week or month.

Each point is what `view(..., as_of=D)` would say of the score on the last day D of its
period, computed with the same rule (`score_of` over the day buckets that start by D), so
the series ends on the score the relation itself reports. Pure: the caller brings the day
buckets (a ledger's `days`) and the range.

Cost: `score_of` once per period in which the buckets change (a period with no event keeps
the previous score), each over the days so far, so O(changing periods x days).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .relations import Climate, DayBucket, climate_of, score_of

Bucket = Literal["week", "month"]


class ScorePoint(BaseModel):
    """The score at the end of one period (the last day of the range if that comes first)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: str = Field(description="The period, as `occurred` names it: `2023-W20`, `2023-05`.")
    start: date = Field(description="Its first day.")
    end: date = Field(description="The day the score is read on: its last day, or `to`.")
    score: float | None = Field(description="None while the pair has no event yet.")
    climate: Climate | None
    events: int = Field(description="Events that occurred in the period (up to `end`).")
    events_to_date: int = Field(description="Events that occurred up to `end`.")


def period_of(day: date, bucket: Bucket) -> tuple[str, date, date]:
    """The period holding `day`: its name, first and last day."""
    if bucket == "week":
        year, week, weekday = day.isocalendar()
        first = day - timedelta(days=weekday - 1)
        return f"{year}-W{week:02d}", first, first + timedelta(days=6)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return f"{day.year:04d}-{day.month:02d}", first, following - timedelta(days=1)


def periods(start: date, end: date, bucket: Bucket) -> Iterator[tuple[str, date, date]]:
    """Every period from the one holding `start` to the one holding `end`, in order."""
    day = start
    while day <= end:
        name, first, last = period_of(day, bucket)
        yield name, first, last
        day = last + timedelta(days=1)


def count_periods(start: date, end: date, bucket: Bucket) -> int:
    """How many periods `periods(start, end, bucket)` yields, without making them."""
    if end < start:
        return 0
    if bucket == "week":
        return (period_of(end, "week")[1] - period_of(start, "week")[1]).days // 7 + 1
    return (end.year - start.year) * 12 + end.month - start.month + 1


def score_series(
    days: Mapping[date, DayBucket], start: date, end: date, bucket: Bucket
) -> list[ScorePoint]:
    """The score as of the end of each period from `start` to `end` (each point's `end` is
    clipped to `end`). Buckets before `start` count in the score, as they do in the view."""
    ordered = sorted((d, b) for d, b in days.items() if b.count and d <= end)
    points: list[ScorePoint] = []
    seen: dict[date, DayBucket] = {}
    i = 0
    to_date = 0
    score: float | None = None
    for name, first, last in periods(start, end, bucket):
        cut = min(last, end)
        in_period = 0
        changed = False
        while i < len(ordered) and ordered[i][0] <= cut:
            day, counted = ordered[i]
            seen[day] = counted
            to_date += counted.count
            if day >= first:
                in_period += counted.count
            changed = True
            i += 1
        if changed:
            score = score_of(seen)
        points.append(
            ScorePoint(
                period=name,
                start=first,
                end=cut,
                score=score,
                climate=climate_of(score) if score is not None else None,
                events=in_period,
                events_to_date=to_date,
            )
        )
    return points


def first_day(days: Mapping[date, DayBucket]) -> date | None:
    """The first day with an event, if any."""
    return min((d for d, b in days.items() if b.count), default=None)
