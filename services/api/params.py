"""Request parameters the routes share, validated before they reach a reader.

Codes are case-insensitive and checked against the contract's registries; person and event
ids against the contract's patterns. Nothing a client sends becomes a Redis key unchecked.
A bad value is a 422 that names the parameter and the value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError

from chancery.contract import EVENT_TYPES, IGOS, is_country, is_igo
from chancery.contract.text import SLUG_PATTERN
from chancery.contract.when import MAX_YEAR, MIN_YEAR
from chancery.domain.relations import Pair
from chancery.domain.selection import EventFilter
from chancery.positions import InvalidPositionError, Position
from services.platform.web import Problem

_SLUG = re.compile(SLUG_PATTERN)
_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@~-]{0,127}$")
_SOURCE = re.compile(r"^[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]{1,512}$")
TYPE_PREFIX = "diplomacy."

T = TypeVar("T")
# The days the contract can name (chancery.contract.when): outside them, a 422, not an
# OverflowError one day further on in a range bound.
Day = Annotated[date, Field(ge=date(MIN_YEAR, 1, 1), le=date(MAX_YEAR, 12, 31))]
_DAY: TypeAdapter[date] = TypeAdapter(Day)
_INSTANT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def invalid(field: str, message: str, kind: str = "value_error") -> Problem:
    return Problem(
        422,
        "Invalid request",
        f"{field}: {message}",
        errors=[{"field": field, "message": message, "type": kind}],
    )


def actor(code: str, field: str) -> str:
    """A state (ISO 3166-1 alpha-3) or a known organisation, in any case; upper case out."""
    upper = code.strip().upper()
    if is_country(upper) or is_igo(upper):
        return upper
    raise invalid(
        field,
        f"'{code[:20]}' is neither an ISO 3166-1 alpha-3 country code nor a known "
        f"organisation ({', '.join(sorted(IGOS))})",
        "unknown_actor",
    )


PAIRS_KEPT = 4096


def pair(a: str, b: str) -> Pair:
    """The pair of two codes as given (valid pairs are kept: a hot read asks for the same
    few again and again; a refusal raises, so it is never kept)."""
    return _pair(a, b)


@functools.lru_cache(maxsize=PAIRS_KEPT)
def _pair(a: str, b: str) -> Pair:
    first, second = actor(a, "a"), actor(b, "b")
    if first == second:
        raise invalid("b", f"a pair is two different actors, got {first} twice", "same_actor")
    return Pair.of(first, second)


def _query(adapter: TypeAdapter[T], value: str | None, field: str) -> T | None:
    """A query parameter validated as FastAPI would (same rules, same 422 on failure)."""
    if value is None:
        return None
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {**error, "loc": ("query", field, *error["loc"])} for error in exc.errors()
        ]
        raise RequestValidationError(errors) from None


def day(value: str | None, field: str) -> date | None:
    """An optional `YYYY-MM-DD` query parameter."""
    return _query(_DAY, value, field)


def instant(value: str | None, field: str) -> datetime | None:
    """An optional RFC 3339 date-time query parameter, with its offset."""
    return _query(_INSTANT, value, field)


def person_id(value: str, field: str = "person_id") -> str:
    if len(value) > 64 or not _SLUG.fullmatch(value):
        raise invalid(
            field,
            f"'{value[:40]}' is not a person id (the lowercase slug of the name, like li-hui)",
            "person_id",
        )
    return value


def event_id(value: str) -> str:
    if not _EVENT_ID.fullmatch(value):
        raise invalid("event_id", f"'{value[:40]}' is not a valid event id", "event_id")
    return value


def source(value: str | None) -> str | None:
    if value is not None and not _SOURCE.fullmatch(value):
        raise invalid("source", "not a valid CloudEvents source (a URI reference)", "source")
    return value


def event_types(values: Iterable[str] | None, field: str = "type") -> frozenset[str] | None:
    """Full names (`diplomacy.meeting.held`) or short ones (`meeting.held`); comma lists too."""
    if not values:
        return None
    chosen: set[str] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            full = name if name.startswith(TYPE_PREFIX) else TYPE_PREFIX + name
            if full not in EVENT_TYPES:
                raise invalid(
                    field,
                    f"'{part[:60]}' is not a Chancery event type; known types: "
                    + ", ".join(EVENT_TYPES),
                    "unknown_type",
                )
            chosen.add(full)
    return frozenset(chosen) or None


def actors(values: Iterable[str] | None, field: str) -> frozenset[str] | None:
    if not values:
        return None
    chosen = {actor(part, field) for value in values for part in value.split(",") if part.strip()}
    return frozenset(chosen) or None


def pairs(values: Iterable[str] | None, field: str) -> frozenset[Pair] | None:
    """Pairs written `CHN-USA` (or `CHN|USA`, the pair's key), either order; comma lists too."""
    if not values:
        return None
    chosen: set[Pair] = set()
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not text:
                continue
            a, sep, b = text.replace("|", "-").partition("-")
            if not sep:
                raise invalid(field, f"'{text[:40]}' is not a pair (two codes: CHN-USA)", "pair")
            first, second = actor(a, field), actor(b, field)
            if first == second:
                raise invalid(field, f"a pair is two different actors, got {first} twice", "pair")
            chosen.add(Pair.of(first, second))
    return frozenset(chosen) or None


def people(values: Iterable[str] | None, field: str) -> frozenset[str] | None:
    """Person ids (`li-hui`); comma lists too."""
    if not values:
        return None
    parts = (part.strip() for value in values for part in value.split(","))
    chosen = {person_id(part, field) for part in parts if part}
    return frozenset(chosen) or None


def event_filter(
    types: Iterable[str] | None,
    countries: Iterable[str] | None,
    pair_values: Iterable[str] | None,
    person_values: Iterable[str] | None,
    *,
    prefix: str = "",
) -> EventFilter:
    """The filter of the stream and of webhook subscriptions, each criterion validated; a
    bad value is a 422 naming `<prefix><type|country|pair|person>`."""
    return EventFilter(
        types=event_types(types, f"{prefix}type"),
        countries=actors(countries, f"{prefix}country"),
        pairs=pairs(pair_values, f"{prefix}pair"),
        people=people(person_values, f"{prefix}person"),
    )


def position(token: str, *, topic: str, partitions: int, field: str) -> Position:
    """A position token of our topic whose partitions exist."""
    try:
        parsed = Position.parse(token.strip())
    except InvalidPositionError as exc:
        raise invalid(field, str(exc), "position") from None
    if parsed.topic != topic:
        raise invalid(
            field, f"the position is of topic {parsed.topic!r}, not {topic!r}", "position"
        )
    beyond = [p for p, _ in parsed if p >= partitions]
    if beyond:
        raise invalid(
            field,
            f"partition {beyond[0]} does not exist (the topic has {partitions})",
            "position",
        )
    return parsed
