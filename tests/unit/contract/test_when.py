"""`When`: ISO 8601 at the precision the source gave."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from chancery.contract import When, day_bound
from chancery.contract.when import WHEN_PATTERN, InvalidWhen

from .strategies import when_texts

pytestmark = pytest.mark.unit


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "precision", "start", "end"),
    [
        ("2023-05-12", "day", utc(2023, 5, 12), utc(2023, 5, 13)),
        ("2023-05", "month", utc(2023, 5, 1), utc(2023, 6, 1)),
        ("2023-12", "month", utc(2023, 12, 1), utc(2024, 1, 1)),
        ("2023-W20", "week", utc(2023, 5, 15), utc(2023, 5, 22)),
        ("2020-W53", "week", utc(2020, 12, 28), utc(2021, 1, 4)),
        ("2023-05-10/2023-05-11", "interval", utc(2023, 5, 10), utc(2023, 5, 12)),
        ("2023-05/2023-W22", "interval", utc(2023, 5, 1), utc(2023, 6, 5)),
        ("2023-05-12T09:30+08:00", "datetime", utc(2023, 5, 12, 1, 30), utc(2023, 5, 12, 1, 31)),
        (
            "2023-05-12T09:30:15Z",
            "datetime",
            utc(2023, 5, 12, 9, 30, 15),
            utc(2023, 5, 12, 9, 30, 16),
        ),
        (
            "2023-05-12T00:00:00.5-05:00",
            "datetime",
            utc(2023, 5, 12, 5, 0, 0, 500000),
            utc(2023, 5, 12, 5, 0, 0, 500001),
        ),
    ],
)
def test_each_form_has_its_precision_and_a_half_open_utc_range(
    text: str, precision: str, start: datetime, end: datetime
) -> None:
    when = When(text)
    assert (when.precision, when.start, when.end) == (precision, start, end)
    assert str(when) == text


def test_the_article_relative_dates_resolve_from_friday_12_may_2023() -> None:
    # "next week", "last month", "on Wednesday and Thursday" as the seeds write them
    assert When("2023-W20").start.date() == date(2023, 5, 15)  # the Monday after Friday 12 May
    assert When("2023-04").contains(When("2023-04-30"))
    assert When("2023-05-10/2023-05-11").first_day.strftime("%A") == "Wednesday"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("2023-05-11/2023-05-10", "when_end_before_start"),
        ("2023-06/2023-05", "when_end_before_start"),
        ("2023-02-30", "when_invalid_date"),
        ("2023-13", "when_invalid_date"),
        ("2023-W54", "when_invalid_date"),
        ("2023-W53", "when_invalid_date"),  # 2023 has 52 ISO weeks
        ("2023-05-12T09:30", "when_format"),  # a date-time needs its offset
        ("2023-05-12T25:00Z", "when_invalid_date"),
        ("2023-05-12T10:00+24:00", "when_invalid_date"),
        ("12 May 2023", "when_format"),
        ("2023", "when_format"),
        ("2023-05-12/", "when_format"),
        ("2023-05-10/2023-05-11/2023-05-12", "when_format"),
        ("0999-01-01", "when_out_of_range"),
        ("2023-w20", "when_format"),
    ],
)
def test_what_is_not_a_time_is_refused_with_a_reason(text: str, kind: str) -> None:
    with pytest.raises(InvalidWhen) as caught:
        When(text)
    assert caught.value.kind == kind


def test_a_month_sorts_before_the_days_inside_it_and_a_day_before_its_instants() -> None:
    texts = ["2023-05-01T08:00Z", "2023-05-01", "2023-05", "2023-W18", "2023-05-01/2023-05-03"]
    ordered = sorted(texts, key=lambda t: When(t).sort_key())
    # all start on Monday 1 May 2023: coarsest first
    assert ordered == [
        "2023-05",
        "2023-W18",
        "2023-05-01/2023-05-03",
        "2023-05-01",
        "2023-05-01T08:00Z",
    ]


def test_sort_keys_order_by_start_first() -> None:
    assert (
        When("2023-04-30").sort_key() < When("2023-05").sort_key() < When("2023-05-02").sort_key()
    )


@pytest.mark.parametrize(
    ("text", "day", "expected"),
    [
        ("2023-05", date(2023, 5, 1), True),  # a month starts on its first day
        ("2023-05", date(2023, 4, 30), False),
        ("2023-W20", date(2023, 5, 14), False),
        ("2023-W20", date(2023, 5, 15), True),
        ("2023-05-12T23:30-05:00", date(2023, 5, 12), False),  # 04:30 UTC on the 13th
        ("2023-05-12T23:30+02:00", date(2023, 5, 12), True),
    ],
)
def test_starts_on_or_before_reads_the_start_in_utc(text: str, day: date, expected: bool) -> None:
    when = When(text)
    assert when.starts_on_or_before(day) is expected
    assert (when.sort_key() < day_bound(day)) is expected


@given(when_texts(), when_texts())
def test_day_bound_agrees_with_starts_on_or_before(text: str, other: str) -> None:
    when, day = When(text), When(other).first_day
    assert (when.sort_key() < day_bound(day)) is when.starts_on_or_before(day)


@given(when_texts())
def test_every_form_matches_the_schema_pattern_and_keeps_its_text(text: str) -> None:
    when = When(text)
    assert re.match(WHEN_PATTERN, text)
    assert When(when.text) == when
    assert when.start < when.end


def test_contains_is_about_ranges() -> None:
    assert When("2023-W20").contains(When("2023-05-15"))
    assert When("2023-W20").contains(When("2023-05-16/2023-05-21"))
    assert not When("2023-W20").contains(When("2023-05-14"))
    assert not When("2023-05").contains(When("2023-W22"))  # 29 May to 4 June


def test_when_is_immutable_and_equal_by_its_text() -> None:
    when = When("2023-05")
    with pytest.raises(AttributeError):
        when._text = "2023-06"
    assert When("2023-05") == when
    assert When("2023-05-01/2023-05-31") != when  # same days, not what the source said
    assert len({When("2023-05"), When("2023-05")}) == 1


class _Holder(BaseModel):
    model_config = ConfigDict(frozen=True)
    occurred: When


def test_as_a_pydantic_field_it_reads_and_writes_the_same_string() -> None:
    holder = _Holder.model_validate_json('{"occurred":"2023-W20"}')
    assert holder.occurred == When("2023-W20")
    assert holder.model_dump_json() == '{"occurred":"2023-W20"}'
    assert _Holder(occurred=When("2023-05")).model_dump() == {"occurred": "2023-05"}


def test_as_a_pydantic_field_a_bad_time_is_an_error_on_that_field() -> None:
    with pytest.raises(ValidationError) as caught:
        _Holder.model_validate({"occurred": "2023-05-11/2023-05-10"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("occurred",)
    assert error["type"] == "when_end_before_start"
    with pytest.raises(ValidationError) as caught:
        _Holder.model_validate({"occurred": 20230512})
    assert caught.value.errors()[0]["type"] == "when_type"


def test_its_json_schema_is_a_string_with_the_pattern() -> None:
    schema = _Holder.model_json_schema()["properties"]["occurred"]
    assert schema["type"] == "string"
    assert schema["pattern"] == WHEN_PATTERN


def test_from_datetime_keeps_the_offset() -> None:
    when = When.from_datetime(datetime.fromisoformat("2023-05-12T09:30:00+08:00"))
    assert when.text == "2023-05-12T09:30:00+08:00"
    assert when.precision == "datetime"
    with pytest.raises(ValueError, match="aware"):
        When.from_datetime(datetime(2023, 5, 12))


def test_a_validated_time_is_parsed_once_per_text() -> None:
    adapter: TypeAdapter[When] = TypeAdapter(When)
    first = adapter.validate_json('"2023-05-12"')
    assert adapter.validate_python("2023-05-12") is first  # immutable, so shared
    assert adapter.validate_json('"2023-05-12"') == When("2023-05-12")
    for _ in range(2):  # a refusal is not remembered as anything else
        with pytest.raises(ValidationError, match="not a real date"):
            adapter.validate_json('"2023-02-30"')
