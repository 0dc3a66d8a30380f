"""What an imported row becomes: events, or a reason to skip it. Pure: no I/O.

Every row that can be mapped becomes one `diplomacy.event.coded`, whose id is the dataset's
own row id (GDELT's GLOBALEVENTID, ICEWS's Event ID) under one fixed `source` per dataset.
Some CAMEO codes also say something the catalogue has a type for; those rows add a derived
event (`meeting_event`, `visit_leg_event`).

A derived event says so (`derived: true`), so that the relation counts the interaction
once (the coded events count it; the meeting or leg adds its contact and plan). Its id is a
digest of its content (`derived_id`): the same fact reported by two rows (the two rows of a
042/043 visit pair, the A->B and B->A rows of one consultation) becomes the very same event,
which ingest stores once whichever row sends it, and two different facts never share an
id. Importing the same files again derives the same events, so it changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Literal, TypeVar

from pydantic import ValidationError

from chancery.contract import (
    Destination,
    Event,
    EventCoded,
    EventCodedData,
    MeetingHeld,
    MeetingHeldData,
    Person,
    VisitLegData,
    VisitLegStarted,
    When,
    slugify,
)
from chancery.contract.catalogue import MeetingMode

SkipReason = Literal[
    "one_sided",
    "no_actor",
    "same_actor",
    "unknown_cameo",
    "bad_date",
    "malformed",
    "invalid",
]

SKIP_REASONS: Mapping[SkipReason, str] = MappingProxyType(
    {
        "one_sided": "one side has no actor at all",
        "no_actor": "one side is not a state or a known organisation",
        "same_actor": "the same state or organisation on both sides",
        "unknown_cameo": "CAMEO code missing or not in the CAMEO table",
        "bad_date": "date missing, invalid, or after the report",
        "malformed": "malformed row (columns, id or numbers)",
        "invalid": "refused by the event contract",
    }
)
"""Each reason a row is skipped, as the summary prints it."""

MEETING_MODES: Mapping[str, MeetingMode] = MappingProxyType(
    {
        "040": "in_person",  # Consult, not specified below: "all consultations and meetings"
        "041": "phone",  # Discuss by telephone
        "044": "in_person",  # Meet at a "third" location
        "046": "in_person",  # Engage in negotiation
    }
)
"""CAMEO codes that are a meeting or a call between the two sides. 042/043 are visits (a
trip, when the traveller is a named person); 045 "Mediate" names the mediator and only one
of the parties, which is not enough for a meeting."""

VISIT_CODES: Mapping[str, Literal["visitor_first", "host_first"]] = MappingProxyType(
    {"042": "visitor_first", "043": "host_first"}
)
"""042 "Make a visit": actor 1 travels to actor 2. 043 "Host a visit": actor 2 travels."""

REPORT_TOLERANCE = timedelta(days=1)
"""As the envelope allows: an event may start at most one day after it was reported."""

_EVENT_ID = re.compile(r"^[0-9]{1,40}$")
_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f]+$")
_MAX_URL = 2048
_NAME = re.compile(r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]{0,118}[^\s\x00-\x1f\x7f])?$")
_DERIVED_DIGEST_BYTES = 10
TRIP_DATE_SUFFIX = len("-2018-06-01")
MAX_SLUG = 64


@dataclass(frozen=True)
class Mapped:
    """A row that becomes events: its coded event, then what its code also says."""

    coded: EventCoded
    derived: tuple[Event, ...] = ()

    @property
    def events(self) -> tuple[Event, ...]:
        return (self.coded, *self.derived)


@dataclass(frozen=True)
class Skipped:
    reason: SkipReason
    detail: str


Outcome = Mapped | Skipped


class RowError(Exception):
    """Raised while mapping a row; `skip` turns it into the row's outcome."""

    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def skipped(self) -> Skipped:
        return Skipped(self.reason, self.detail)


def row_id(value: str, column: str) -> str:
    if not _EVENT_ID.match(value):
        raise RowError("malformed", f"{column} {value[:40]!r} is not a number")
    return value


def optional_float(value: str, column: str) -> float | None:
    if value in {"", "NA"}:
        return None
    try:
        return float(value)
    except ValueError:
        raise RowError("malformed", f"{column} {value[:40]!r} is not a number") from None


def optional_int(value: str, column: str) -> int | None:
    if value in {"", "NA"}:
        return None
    if not value.isdigit():
        raise RowError("malformed", f"{column} {value[:40]!r} is not a whole number")
    return int(value)


def parse_day(value: str, fmt: str, column: str) -> date:
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=UTC).date()
    except ValueError:
        raise RowError("bad_date", f"{column} {value[:40]!r} is not a date") from None


def check_reported(occurred: When, reported: datetime, what: str) -> None:
    if occurred.start > reported + REPORT_TOLERANCE:
        raise RowError(
            "bad_date", f"occurred {occurred} is after it was reported ({what} {reported:%F %T})"
        )


def url_or_none(value: str) -> str | None:
    """The URL if it is an absolute http(s) URL; GDELT also writes citations there."""
    return value if _URL.match(value) and 10 <= len(value) <= _MAX_URL else None


def name_or_none(value: str) -> str | None:
    """A place or person name as the contract takes it (one line, at most 120 characters)."""
    value = value.strip()
    return value if value and value != "NA" and _NAME.match(value) else None


def person(name: str, country: str) -> Person | None:
    """A person the contract accepts (id = the slug of the name), or None."""
    clean = name_or_none(name)
    slug = slugify(clean) if clean else ""
    if clean is None or not slug or len(slug) > MAX_SLUG - TRIP_DATE_SUFFIX:
        return None
    try:
        return Person(id=slug, name=clean, country=country)
    except ValidationError:
        return None


def coded_event(
    *,
    source: str,
    id: str,
    reported: datetime,
    actor1: str,
    actor2: str,
    cameo: str,
    goldstein: float | None,
    occurred: When,
    source_url: str | None = None,
    mentions: int | None = None,
) -> EventCoded:
    """The coded event of a row; RowError("invalid") if the contract refuses it."""
    try:
        return EventCoded(
            specversion="1.0",
            id=id,
            source=source,
            type="diplomacy.event.coded",
            time=reported,
            data=EventCodedData(
                actor1=actor1,
                actor2=actor2,
                cameo=cameo,
                goldstein=goldstein,
                occurred=occurred,
                source_url=source_url,
                mentions=mentions,
            ),
        )
    except ValidationError as exc:
        raise RowError("invalid", _first_error(exc)) from None


def derived_id(prefix: str, event_type: str, reported: datetime, data_json: str) -> str:
    """`<prefix>.<digest>`: the digest of everything the derived event says."""
    material = f"{event_type}\n{reported.isoformat()}\n{data_json}".encode()
    digest = hashlib.blake2b(material, digest_size=_DERIVED_DIGEST_BYTES).hexdigest()
    return f"{prefix}.{digest}"


def meeting_event(
    *,
    source: str,
    reported: datetime,
    code: str,
    actor1: str,
    actor2: str,
    occurred: When,
    participants: tuple[Person, ...] = (),
    city: str | None = None,
    country: str | None = None,
) -> MeetingHeld | None:
    """The meeting a 04x row reports, or None if the code is not a meeting or a call."""
    mode = MEETING_MODES.get(code)
    if mode is None:
        return None
    unique = {p.id: p for p in participants}
    try:
        data = MeetingHeldData(
            occurred=occurred,
            cameo=code,
            parties=tuple(sorted((actor1, actor2))),
            mode=mode,
            participants=tuple(unique[k] for k in sorted(unique)),
            city=city,
            country=country,
            derived=True,
        )
        prefix = f"meeting.{occurred}.{'-'.join(data.parties)}"
        return _derived(
            MeetingHeld, "diplomacy.meeting.held", prefix, reported, source=source, data=data
        )
    except ValidationError:
        return None  # e.g. a city name the contract refuses: the coded event still stands


def visit_leg_event(
    *,
    source: str,
    reported: datetime,
    traveller: Person,
    host: Destination,
    day: date,
) -> VisitLegStarted | None:
    """The traveller's leg in the host country, started on `day`, in a trip of that day.

    The trip is `<traveller>-<day>`: the datasets do not say which legs make one journey, so
    every day of a person's travel is its own trip, and the countries visited that day its
    legs. A leg is reported as started, not completed: a report of a visit says it happened,
    not that it is over.
    """
    try:
        data = VisitLegData(
            occurred=When.of_day(day),
            trip_id=f"{traveller.id}-{day.isoformat()}",
            traveller=traveller,
            country=host.country,
            city=host.city,
            derived=True,
        )
        prefix = f"visit.{day.isoformat()}.{traveller.id}.{host.country}"
        return _derived(
            VisitLegStarted,
            "diplomacy.visit.leg.started",
            prefix,
            reported,
            source=source,
            data=data,
        )
    except ValidationError:
        return None


DerivedEvent = TypeVar("DerivedEvent", MeetingHeld, VisitLegStarted)


def _derived(
    event: type[DerivedEvent],
    kind: str,
    prefix: str,
    reported: datetime,
    *,
    source: str,
    data: MeetingHeldData | VisitLegData,
) -> DerivedEvent:
    """The `kind` event saying `data`, its id the digest of all it says (`derived_id`)."""
    fact = data.model_dump_json(exclude_none=True)
    return event(
        specversion="1.0",
        id=derived_id(prefix, kind, reported, fact),
        source=source,
        type=kind,
        time=reported,
        data=data,
    )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
