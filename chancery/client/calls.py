"""Every request the client makes, as a `Call`: where it goes, with what, and how its answer
is read. Pure: building a call sends nothing (core.py runs it, the clients perform it).

Path segments the caller gives (codes, person and event ids) are percent-encoded: a value
never changes which route is asked. The services validate every value and answer 422 with
what is wrong, so the client does not second-guess them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from chancery.answers import (
    CountryRelationsBody,
    Direction,
    ItineraryBody,
    Order,
    PersonBody,
    RelationBody,
    RelationListBody,
    RelationSort,
    ScoreSeriesBody,
    VisitsBody,
)
from chancery.contract import Event, EventEnvelope, decode_event, encode_event
from chancery.domain.scores import Bucket

from .answers import Accepted, EventsBody, RecordBody, SseMessage, StreamedEvent, TimelineBody
from .core import Call, Endpoint, Params
from .errors import UnexpectedAnswer

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

EVENT_MEDIA_TYPE = "application/cloudevents+json"
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
APPENDED_HEADER = "chancery-appended"

EventLike = Event | Mapping[str, Any] | bytes
"""An event to post: a contract model, its JSON object, or its JSON already encoded."""

Listing = Callable[[str | None], Call[T]]
"""The call of a listing's page after a cursor (None: the first page). Its builder takes
an iterable of types or statuses in once, so that a generator serves every page."""


def _segment(value: str) -> str:
    return quote(value, safe="")


def _day(value: date) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def _instant(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"known_at needs a time zone (UTC if you mean it): {value!r}")
    return value.isoformat()


def _when(as_of: date | None, known_at: datetime | None) -> Params:
    params: list[tuple[str, str]] = []
    if as_of is not None:
        params.append(("as_of", _day(as_of)))
    if known_at is not None:
        params.append(("known_at", _instant(known_at)))
    return tuple(params)


def _page(cursor: str | None, limit: int | None) -> Params:
    params: list[tuple[str, str]] = []
    if limit is not None:
        params.append(("limit", str(limit)))
    if cursor is not None:
        params.append(("cursor", cursor))
    return tuple(params)


def body_as(model: type[M]) -> Callable[[Endpoint, httpx.Response], M]:
    """A reader of a JSON answer into `model`; an answer that is not one is UnexpectedAnswer."""

    def read(endpoint: Endpoint, response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            what = (
                f"{'.'.join(str(part) for part in errors[0]['loc'])}: {errors[0]['msg']}"
                if errors
                else str(exc)
            )
            raise UnexpectedAnswer(
                f"{endpoint.name} at {endpoint.url} answered {response.request.url.path} with "
                f"a body that is not a {model.__name__} ({what})",
                service=endpoint.name,
                url=endpoint.url,
            ) from exc

    return read


# --- ingest ----------------------------------------------------------------------------------


def _encoded(event: EventLike) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, Mapping):
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    return encode_event(event)


def _accepted(endpoint: Endpoint, response: httpx.Response) -> Accepted:
    accepted = body_as(Accepted)(endpoint, response)
    appended = response.headers.get(APPENDED_HEADER, "")
    return accepted.model_copy(update={"appended": int(appended) if appended.isdigit() else None})


def post(events: EventLike | Sequence[EventLike]) -> Call[Accepted]:
    """One event to /v1/events, or a sequence of them to /v1/events/batch (all or nothing)."""
    if isinstance(events, EventEnvelope | Mapping | bytes):
        return Call(
            "ingest",
            "POST",
            "/v1/events",
            _accepted,
            content=_encoded(events),
            headers={"Content-Type": EVENT_MEDIA_TYPE},
            expect=202,
        )
    body = b"[" + b",".join(_encoded(e) for e in events) + b"]"
    return Call(
        "ingest",
        "POST",
        "/v1/events/batch",
        _accepted,
        content=body,
        headers={"Content-Type": BATCH_MEDIA_TYPE},
        expect=202,
    )


# --- the API's reads -------------------------------------------------------------------------


def relation(
    a: str, b: str, *, as_of: date | None, known_at: datetime | None
) -> Call[RelationBody]:
    return Call(
        "API",
        "GET",
        f"/v1/relations/{_segment(a)}/{_segment(b)}",
        body_as(RelationBody),
        params=_when(as_of, known_at),
    )


def relations_pages(
    country: str, *, sort: RelationSort, order: Order, limit: int | None
) -> Listing[RelationListBody]:
    def page(cursor: str | None) -> Call[RelationListBody]:
        return Call(
            "API",
            "GET",
            "/v1/relations",
            body_as(RelationListBody),
            params=(("country", country), ("sort", sort), ("order", order), *_page(cursor, limit)),
        )

    return page


def country_relations(
    country: str,
    *,
    as_of: date | None,
    known_at: datetime | None,
    sort: RelationSort,
    order: Order,
) -> Call[CountryRelationsBody]:
    return Call(
        "API",
        "GET",
        f"/v1/countries/{_segment(country)}/relations",
        body_as(CountryRelationsBody),
        params=(*_when(as_of, known_at), ("sort", sort), ("order", order)),
    )


def scores(
    a: str,
    b: str,
    *,
    bucket: Bucket,
    start: date | None,
    end: date | None,
    as_of: date | None,
    known_at: datetime | None,
) -> Call[ScoreSeriesBody]:
    params: list[tuple[str, str]] = [("bucket", bucket)]
    if start is not None:
        params.append(("from", _day(start)))
    if end is not None:
        params.append(("to", _day(end)))
    return Call(
        "API",
        "GET",
        f"/v1/relations/{_segment(a)}/{_segment(b)}/scores",
        body_as(ScoreSeriesBody),
        params=(*params, *_when(as_of, known_at)),
    )


def record_pages(
    a: str,
    b: str,
    *,
    as_of: date | None,
    known_at: datetime | None,
    order: Order,
    limit: int | None,
) -> Listing[RecordBody]:
    def page(cursor: str | None) -> Call[RecordBody]:
        return Call(
            "API",
            "GET",
            f"/v1/relations/{_segment(a)}/{_segment(b)}/record",
            body_as(RecordBody),
            params=(*_when(as_of, known_at), ("order", order), *_page(cursor, limit)),
        )

    return page


def _timeline_path(pair: tuple[str, str] | None, country: str | None) -> str:
    """The timeline of a pair or of a country; exactly one of them."""
    if (pair is None) == (country is None):
        raise ValueError("a timeline is of a pair or of a country: give exactly one")
    if pair is not None:
        a, b = pair
        return f"/v1/relations/{_segment(a)}/{_segment(b)}/timeline"
    assert country is not None
    return f"/v1/countries/{_segment(country)}/timeline"


def timeline_pages(
    pair: tuple[str, str] | None,
    country: str | None,
    *,
    types: Iterable[str],
    start: date | None,
    end: date | None,
    order: Order,
    limit: int | None,
) -> Listing[TimelineBody]:
    path, chosen = _timeline_path(pair, country), tuple(types)

    def page(cursor: str | None) -> Call[TimelineBody]:
        params: list[tuple[str, str]] = [("type", t) for t in chosen]
        if start is not None:
            params.append(("from", _day(start)))
        if end is not None:
            params.append(("to", _day(end)))
        params.append(("order", order))
        return Call(
            "API", "GET", path, body_as(TimelineBody), params=(*params, *_page(cursor, limit))
        )

    return page


def itinerary(
    person_id: str, *, as_of: date | None, known_at: datetime | None
) -> Call[ItineraryBody]:
    return Call(
        "API",
        "GET",
        f"/v1/itineraries/{_segment(person_id)}",
        body_as(ItineraryBody),
        params=_when(as_of, known_at),
    )


def visits_pages(
    country: str,
    *,
    start: date | None,
    end: date | None,
    direction: Direction | None,
    statuses: Iterable[str],
    limit: int | None,
) -> Listing[VisitsBody]:
    chosen = tuple(statuses)

    def page(cursor: str | None) -> Call[VisitsBody]:
        params: list[tuple[str, str]] = [("country", country)]
        if start is not None:
            params.append(("from", _day(start)))
        if end is not None:
            params.append(("to", _day(end)))
        if direction is not None:
            params.append(("direction", direction))
        params += [("status", s) for s in chosen]
        return Call(
            "API", "GET", "/v1/visits", body_as(VisitsBody), params=(*params, *_page(cursor, limit))
        )

    return page


def person(person_id: str) -> Call[PersonBody]:
    return Call("API", "GET", f"/v1/people/{_segment(person_id)}", body_as(PersonBody))


def event(event_id: str, *, source: str | None) -> Call[EventsBody]:
    return Call(
        "API",
        "GET",
        f"/v1/events/{_segment(event_id)}",
        body_as(EventsBody),
        params=(("source", source),) if source is not None else (),
    )


# --- the stream ------------------------------------------------------------------------------


def stream_params(types: Iterable[str], countries: Iterable[str]) -> Params:
    return (*(("type", t) for t in types), *(("country", c) for c in countries))


def typed_events(endpoint: Endpoint) -> Callable[[SseMessage], StreamedEvent | None]:
    """The stream's messages as typed events. An `error` message (the read models went
    away; the API closes the stream after it, and the client reconnects) is skipped."""

    def convert(message: SseMessage) -> StreamedEvent | None:
        if message.event == "error":
            return None
        try:
            decoded = decode_event(message.data)
        except (ValidationError, ValueError) as exc:
            raise UnexpectedAnswer(
                f"{endpoint.name} at {endpoint.url} streamed a message that is not an event "
                f"(id {message.id}): {str(exc).splitlines()[0]}",
                service=endpoint.name,
                url=endpoint.url,
            ) from exc
        return StreamedEvent(position=message.id or "", event=decoded)

    return convert
