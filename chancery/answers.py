"""What the API answers: the body of each read, defined once.

The API builds these bodies (services/api) and the Python client reads them back
(chancery.client), so the two cannot drift: a field added here is in the OpenAPI document
and in what the client validates.

A body that carries events is generic over the event's type. The API's own bodies hold each
event as the JSON object the log holds (`dict[str, Any]`, never validated again on the way
out); the client parametrizes the same fields with the contract's `Event` union, so what it
hands out are typed events. The concrete classes the API serves keep their names below
(`LoggedEvent`, `TimelineBody`, ...); chancery/client/answers.py holds the typed twins.

Pure: models and literals, no I/O.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from chancery.contract import EventRef, Person, When
from chancery.domain import (
    Climate,
    ContactView,
    LegStatus,
    PartnershipView,
    Status,
    Trip,
    TripStatus,
)
from chancery.domain.scores import Bucket, ScorePoint

E = TypeVar("E")
"""The type of an event in a body: its JSON object (the API) or a typed `Event` (client)."""
Item = TypeVar("Item", bound=BaseModel)

RawEvent = dict[str, Any]
"""An event as the log holds it, as a JSON object."""

RelationSort = Literal["score", "last_contact", "event_count"]
Direction = Literal["to", "from"]
Order = Literal["asc", "desc"]


# --- relations -----------------------------------------------------------------------------


class RelationItem(BaseModel):
    """The state of the relation between two actors."""

    model_config = ConfigDict(frozen=True)

    pair: str = Field(description="The two codes, sorted, joined by `|`.")
    parties: tuple[str, str]
    as_of: date = Field(description="The day the state is read on (today unless as_of).")
    known_at: datetime | None = Field(
        None, description="Set when the answer is what Chancery knew at that time."
    )
    status: Status = Field(description="Diplomatic status; `unknown` when no event says.")
    status_since: str | None = Field(description="When the current status began.")
    status_events: tuple[EventRef, ...] = Field(description="The events behind the status.")
    mediator: str | None
    partnership: PartnershipView | None
    score: float = Field(description="Decayed mean Goldstein value of the pair's events.")
    climate: Climate
    event_count: int
    quad_counts: dict[str, int] = Field(
        description="Events per CAMEO quad class: 1 verbal cooperation, 2 material "
        "cooperation, 3 verbal conflict, 4 material conflict."
    )
    last_contact: ContactView | None
    next_contact: ContactView | None


class RelationBody(RelationItem):
    """The state of the relation between two actors, and the position it reflects."""

    position: str = Field(
        "", description="The position token the answer reflects (see Chancery-Position)."
    )


class RelationListBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    country: str
    sort: RelationSort
    order: Order
    items: list[RelationItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# --- events and timelines ------------------------------------------------------------------


class LoggedEventOf(BaseModel, Generic[E]):
    model_config = ConfigDict(frozen=True)

    log_position: str = Field(description="Where the event sits in the log (a position token).")
    retracted: bool = Field(False, description="A later event retracted it: it counts no more.")
    event: E = Field(description="The CloudEvent, as stored in the log.")


class LoggedEvent(LoggedEventOf[RawEvent]):
    """An event as the log holds it (with `recordedtime` and `partitionkey`), and where."""


class TimelineBodyOf(BaseModel, Generic[Item]):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    timeline: str = Field(description="`pair:CHN|USA` or `country:CHN`.")
    items: list[Item]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class TimelineBody(TimelineBodyOf[LoggedEvent]):
    pass


class EventsBodyOf(BaseModel, Generic[Item]):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    id: str
    matches: list[Item] = Field(
        description="One per source that used this id; `retracted` marks those that no "
        "longer count. Retractions themselves are events too and are found by their own id."
    )


class EventsBody(EventsBodyOf[LoggedEvent]):
    pass


# --- people, trips and visits --------------------------------------------------------------


class ItineraryBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    person_id: str
    person: Person | None = Field(description="As the latest trip event names them.")
    as_of: date | None
    known_at: datetime | None
    trips: tuple[Trip, ...]


class VisitBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    when: str | None = Field(description="The leg's best-known dates: started, else planned.")
    country: str = Field(description="Where the leg goes.")
    city: str | None
    direction: Direction = Field(
        description="`to`: a visit to the queried country; `from`: a visit abroad by its people."
    )
    leg_status: LegStatus
    trip_id: str
    trip_status: TripStatus
    traveller: Person
    purpose: str | None


class VisitsBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    country: str
    items: list[VisitBody]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page. A page may hold fewer items than "
        "`limit` when `status` filters: follow the cursor until it is null."
    )


class AppointmentBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: str
    appointed_by: str
    occurred: When
    previous_roles: tuple[str, ...]
    mandate: str | None
    event: EventRef


class TripSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    trip_id: str
    status: TripStatus
    planned: When | None
    destinations: tuple[str, ...]
    purpose: str | None


class PersonBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    id: str
    person: Person | None
    appointments: list[AppointmentBody]
    trips: list[TripSummary]


# --- relations through time ----------------------------------------------------------------


class ScoreSeriesBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    pair: str = Field(description="The two codes, sorted, joined by `|`.")
    parties: tuple[str, str]
    bucket: Bucket
    start: date = Field(description="`from`, else the day of the pair's first event.")
    end: date = Field(description="`to`, else the day read on (today, or as_of).")
    as_of: date | None
    known_at: datetime | None
    points: list[ScorePoint]


class Retraction(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: EventRef = Field(description="The retraction.")
    recorded_at: datetime | None = Field(description="When Chancery recorded the retraction.")
    reason: str | None


class RecordItemOf(BaseModel, Generic[E]):
    model_config = ConfigDict(frozen=True)

    occurred: str = Field(description="When it occurred, at the precision the source gave.")
    recorded_at: datetime | None = Field(description="When Chancery recorded it.")
    retracted: bool = Field(description="Retracted, as known at the time asked about.")
    retraction: Retraction | None = Field(description="The retraction, when retracted.")
    event: E = Field(description="The CloudEvent (its canonical JSON).")


class RecordItem(RecordItemOf[RawEvent]):
    pass


class RecordBodyOf(BaseModel, Generic[Item]):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    pair: str
    parties: tuple[str, str]
    as_of: date | None
    known_at: datetime | None
    order: Order
    total: int = Field(description="Events in the whole record (every page).")
    retracted: int = Field(description="How many of them are retracted.")
    items: list[Item]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class RecordBody(RecordBodyOf[RecordItem]):
    pass


class CountryRelationsBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str = ""
    country: str
    as_of: date = Field(description="The day the relations are read on (today unless as_of).")
    known_at: datetime | None
    sort: RelationSort
    order: Order
    items: list[RelationItem] = Field(description="Every partner with a relation on that day.")
