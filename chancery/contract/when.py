"""`When`: a time as diplomacy reports it, at the precision the source gave.

A report says "next week", "last month", "on Wednesday and Thursday" or gives an exact
instant. Forcing these onto a timestamp would invent precision, so `When` keeps the ISO 8601
text it was given and derives from it a half-open UTC range `[start, end)`:

| form | example | range |
|---|---|---|
| date-time with offset | `2023-05-12T09:30:00+08:00` | that instant, to its last given unit |
| day | `2023-05-12` | the UTC day |
| ISO week | `2023-W20` | Monday 00:00 UTC to the next Monday |
| month | `2023-05` | the first of the month to the first of the next |
| interval | `2023-05-10/2023-05-11` | start of the first to end of the second |

Days, weeks and months are read in UTC: one convention for every source, so the range, and
therefore the order, never depends on where a reader sits.

How precisions compare (`sort_key`): by start, then by precision, coarsest first (month,
week, interval, day, date-time), then by end. So `2023-05` sorts before `2023-05-01`, which
sorts before `2023-05-01T08:00Z`; a week starting on a Monday sorts before that Monday.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from .plain_rules import Plain, plain_type

Precision = Literal["datetime", "day", "week", "month", "interval"]

PRECISION_RANK: dict[Precision, int] = {
    "month": 0,
    "week": 1,
    "interval": 2,
    "day": 3,
    "datetime": 4,
}
"""Coarsest first: the tie-break between two times that start at the same instant."""

MIN_YEAR = 1000
MAX_YEAR = 9998
MAX_LENGTH = 80

_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})"
_DAY = r"\d{4}-\d{2}-\d{2}"
_WEEK = r"\d{4}-W\d{2}"
_MONTH = r"\d{4}-\d{2}"
_SINGLE = rf"(?:{_DATETIME}|{_DAY}|{_WEEK}|{_MONTH})"
WHEN_PATTERN = rf"^{_SINGLE}(?:/{_SINGLE})?$"
"""The shape of every accepted form (the JSON Schema pattern). Values are checked further."""

_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?(Z|([+-])(\d{2}):(\d{2}))$"
)
_DAY_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class InvalidWhen(ValueError):
    """The text is not one of the accepted forms, or names no real time."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _utc_midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def _year(text: str, digits: str) -> int:
    year = int(digits)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidWhen("when_out_of_range", f"{text!r}: years run from {MIN_YEAR} to {MAX_YEAR}")
    return year


def _parse_single(text: str) -> tuple[Precision, datetime, datetime]:
    try:
        if m := _DATETIME_RE.match(text):
            return "datetime", *_datetime_range(text, m)
        if m := _DAY_RE.match(text):
            day = date(_year(text, m[1]), int(m[2]), int(m[3]))
            return "day", _utc_midnight(day), _utc_midnight(day + timedelta(days=1))
        if m := _WEEK_RE.match(text):
            monday = date.fromisocalendar(_year(text, m[1]), int(m[2]), 1)
            return "week", _utc_midnight(monday), _utc_midnight(monday + timedelta(days=7))
        if m := _MONTH_RE.match(text):
            year, month = _year(text, m[1]), int(m[2])
            first = date(year, month, 1)
            following = date(year + month // 12, month % 12 + 1, 1)
            return "month", _utc_midnight(first), _utc_midnight(following)
    except ValueError as exc:
        if isinstance(exc, InvalidWhen):
            raise
        raise InvalidWhen("when_invalid_date", f"{text!r} is not a real date: {exc}") from None
    raise InvalidWhen(
        "when_format",
        f"{text!r} is not an ISO 8601 day (2023-05-12), date-time with offset "
        "(2023-05-12T09:30:00+08:00), month (2023-05), week (2023-W20) or interval "
        "(2023-05-10/2023-05-11)",
    )


def _datetime_range(text: str, m: re.Match[str]) -> tuple[datetime, datetime]:
    year = _year(text, m[1])
    if m[8] == "Z":
        tz = UTC
    else:
        hours, minutes = int(m[10]), int(m[11])
        if hours > 23 or minutes > 59:
            raise InvalidWhen("when_invalid_date", f"{text!r} has an invalid UTC offset")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if m[9] == "-" else offset)
    fraction = m[7] or ""
    micro = int(fraction[1:].ljust(6, "0")) if fraction else 0
    local = datetime(
        year, int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0), micro, tzinfo=tz
    )
    # The range lasts one unit of the finest field given: a minute, a second or a microsecond.
    unit = (
        timedelta(microseconds=1)
        if fraction
        else timedelta(seconds=1)
        if m[6] is not None
        else timedelta(minutes=1)
    )
    start = local.astimezone(UTC)
    return start, start + unit


def _parse(text: str) -> tuple[Precision, datetime, datetime]:
    if len(text) > MAX_LENGTH:
        raise InvalidWhen("when_format", f"a time has at most {MAX_LENGTH} characters")
    if "/" not in text:
        return _parse_single(text)
    first, _, second = text.partition("/")
    _, start, _ = _parse_single(first)
    _, second_start, end = _parse_single(second)
    if second_start < start:
        raise InvalidWhen(
            "when_end_before_start", f"{text!r}: the interval's end precedes its start"
        )
    return "interval", start, end


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class When:
    """An ISO 8601 time at its own precision, with a half-open UTC range.

    Immutable. Two values are equal when their text is: `2023-05` and `2023-05-01/2023-05-31`
    cover the same days but say different things, and the wire keeps what was said.
    """

    __slots__ = ("_end", "_precision", "_sort_key", "_start", "_text")

    _text: str
    _precision: Precision
    _start: datetime
    _end: datetime
    _sort_key: str | None

    def __init__(self, text: str) -> None:
        precision, start, end = _parse(text)
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "_precision", precision)
        object.__setattr__(self, "_start", start)
        object.__setattr__(self, "_end", end)
        object.__setattr__(self, "_sort_key", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("When is immutable")

    @classmethod
    def from_datetime(cls, instant: datetime) -> When:
        """The instant as a date-time `When` (it must carry an offset)."""
        if instant.utcoffset() is None:
            raise ValueError("a When needs an aware datetime")
        return cls(instant.isoformat())

    @classmethod
    def of_day(cls, day: date) -> When:
        return cls(day.isoformat())

    @property
    def text(self) -> str:
        return self._text

    @property
    def precision(self) -> Precision:
        return self._precision

    @property
    def start(self) -> datetime:
        """The first instant covered, in UTC."""
        return self._start

    @property
    def end(self) -> datetime:
        """The first instant after the range, in UTC (exclusive)."""
        return self._end

    @property
    def first_day(self) -> date:
        """The UTC day this time starts on: the day it counts on "as of" a date."""
        return self._start.date()

    def sort_key(self) -> str:
        """A string whose lexicographic order is (start, precision rank, end).

        Computed once per instance (two `strftime`s): every fold and every read model orders
        by it, and `_parsed` shares one instance among all the events that name a time."""
        key = self._sort_key
        if key is None:
            key = f"{_iso(self._start)}/{PRECISION_RANK[self._precision]}/{_iso(self._end)}"
            object.__setattr__(self, "_sort_key", key)
        return key

    def starts_on_or_before(self, day: date) -> bool:
        """True when this time starts on `day` or earlier (the "as of" rule)."""
        return self._start < _utc_midnight(day + timedelta(days=1))

    def ends_after(self, day: date) -> bool:
        """True when this time's range reaches past the end of `day`."""
        return self._end > _utc_midnight(day + timedelta(days=1))

    def contains(self, other: When) -> bool:
        """True when `other`'s range lies inside this one."""
        return self._start <= other._start and other._end <= self._end

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"When({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, When) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __reduce__(self) -> tuple[type[When], tuple[str]]:
        return (When, (self._text,))

    # pydantic: validated from a string (or a When), serialised back to the same string.

    @classmethod
    def _validate_text(cls, text: str) -> When:
        try:
            return _parsed(text)
        except InvalidWhen as exc:
            raise PydanticCustomError(exc.kind, "{message}", {"message": exc.message}) from None

    @classmethod
    def _validate_python(cls, value: object) -> When:
        if isinstance(value, When):
            return value
        if isinstance(value, str):
            return cls._validate_text(value)
        raise PydanticCustomError("when_type", "a time must be an ISO 8601 string")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        from_json = core_schema.no_info_after_validator_function(
            cls._validate_text, core_schema.str_schema()
        )
        return core_schema.json_or_python_schema(
            json_schema=from_json,
            python_schema=core_schema.no_info_plain_validator_function(cls._validate_python),
            serialization=core_schema.plain_serializer_function_ser_schema(
                str, return_schema=core_schema.str_schema()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": WHEN_PATTERN,
            "maxLength": MAX_LENGTH,
            "description": (
                "ISO 8601 at the source's precision: a day, a date-time with offset, a month, "
                "an ISO week or an interval of two of these"
            ),
            "examples": ["2023-05-12", "2023-W20", "2023-05", "2023-05-10/2023-05-11"],
        }


PARSED_CACHE_SIZE = 8192


@lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parsed(text: str) -> When:
    """`When(text)`, remembered: reports cluster on a few days, and a `When` is immutable, so
    one instance per text serves every event that names it. Bounded, so hostile input only
    evicts; a text that fails is not remembered (it raises again)."""
    return When(text)


@lru_cache(maxsize=PARSED_CACHE_SIZE)  # a hit costs no Python frame
def _is_when(text: str) -> bool:
    """What `When._validate_text` accepts."""
    try:
        _parsed(text)
    except InvalidWhen:
        return False
    return True


# The twin takes only the shape of the JSON Schema's pattern (the parser alone also reads,
# say, a final newline), then the parser's verdict.
plain_type(
    When,
    Plain(
        base=Annotated[str, StringConstraints(max_length=MAX_LENGTH, pattern=WHEN_PATTERN)],
        check=_is_when,
    ),
)


def day_bound(day: date) -> str:
    """The smallest sort key of anything starting after `day`.

    `when.sort_key() < day_bound(d)` is the same as `when.starts_on_or_before(d)`: the query
    "latest entry as of d" is a lexicographic range ending here.
    """
    return _iso(_utc_midnight(day + timedelta(days=1)))
