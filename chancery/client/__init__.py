"""The Python client of Chancery: post events, read what follows, follow the stream.

```python
from chancery.client import Client

with Client(api_key=key) as chancery:                # ingest and the API of `make run`
    with chancery.session() as session:               # read your own writes
        session.post(event)
        print(session.relation("CHN", "USA").status)
    for entry in chancery.timeline(pair=("CHN", "USA")):   # every page, cursor followed
        print(entry.event.type, entry.log_position)
    for delivered in chancery.subscribe(countries=["CHN"]):  # resumes by itself
        print(delivered.event.id)
```

`AsyncClient` is the same for asyncio (`await`, `async for`, `async with`). Answers are the
API's own bodies (`chancery.answers`), with events typed by the contract
(`chancery.contract.Event`); failures are the exceptions of `chancery.client.errors`.
"""

from chancery.answers import (
    AppointmentBody,
    CountryRelationsBody,
    ItineraryBody,
    PersonBody,
    RelationBody,
    RelationItem,
    RelationListBody,
    Retraction,
    ScoreSeriesBody,
    TripSummary,
    VisitBody,
    VisitsBody,
)

from .aio import AsyncClient, AsyncPages, AsyncSession, AsyncSubscription
from .answers import (
    Accepted,
    AcceptedEvent,
    EventsBody,
    LoggedEvent,
    RecordBody,
    RecordItem,
    RetryNotice,
    SseMessage,
    StreamedEvent,
    TimelineBody,
)
from .config import DEFAULT_API_URL, DEFAULT_INGEST_URL
from .errors import (
    BadRequest,
    ChanceryError,
    Conflict,
    FieldError,
    Forbidden,
    Gone,
    InvalidRequest,
    NotFound,
    NotYetApplied,
    PayloadTooLarge,
    Problem,
    ProblemError,
    ServiceUnavailable,
    ServiceUnreachable,
    TooManyRequests,
    Unauthorized,
    UnexpectedAnswer,
    UnsupportedMediaType,
)
from .sync import Client, Pages, Session, Subscription

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_INGEST_URL",
    "Accepted",
    "AcceptedEvent",
    "AppointmentBody",
    "AsyncClient",
    "AsyncPages",
    "AsyncSession",
    "AsyncSubscription",
    "BadRequest",
    "ChanceryError",
    "Client",
    "Conflict",
    "CountryRelationsBody",
    "EventsBody",
    "FieldError",
    "Forbidden",
    "Gone",
    "InvalidRequest",
    "ItineraryBody",
    "LoggedEvent",
    "NotFound",
    "NotYetApplied",
    "Pages",
    "PayloadTooLarge",
    "PersonBody",
    "Problem",
    "ProblemError",
    "RecordBody",
    "RecordItem",
    "RelationBody",
    "RelationItem",
    "RelationListBody",
    "Retraction",
    "RetryNotice",
    "ScoreSeriesBody",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "Session",
    "SseMessage",
    "StreamedEvent",
    "Subscription",
    "TimelineBody",
    "TooManyRequests",
    "TripSummary",
    "Unauthorized",
    "UnexpectedAnswer",
    "UnsupportedMediaType",
    "VisitBody",
    "VisitsBody",
]
