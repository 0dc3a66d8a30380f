"""The client's answers cannot drift from what the services answer.

- Ingest keeps its own answer models: the client's `Accepted` is held equal to the schema of
  ingest's 202 in its OpenAPI document.
- The API's bodies are the client's (chancery.answers); those with events are parametrized
  with the contract's `Event`: the typed twins have the same fields as the API's.
- And the proof: the async client, over the API app itself (its in-memory twin of the read
  models, no server), reads every answer of every read, and each one, turned back into JSON,
  is what the API sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from chancery import answers as wire
from chancery.auth import Authenticator, KeyRing
from chancery.client import AsyncClient
from chancery.client import answers as typed
from chancery.contract import EventEnvelope, decode_event
from chancery.settings import ApiSettings, IngestSettings
from services.api.app import create_app as create_api
from services.cli.commands.read import _as_sent as cli_json
from services.ingest.app import create_app as create_ingest
from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.api.conftest import NOON, RECORDED, article

pytestmark = pytest.mark.unit


def _resolved(schema: Any, components: dict[str, Any]) -> Any:
    """A JSON Schema with its $refs inlined and its titles left out (names may differ)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _resolved(components[schema["$ref"].rsplit("/", 1)[-1]], components)
        return {k: _resolved(v, components) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_resolved(v, components) for v in schema]
    return schema


def test_accepted_is_ingests_answer() -> None:
    document = create_ingest(IngestSettings()).openapi()
    components = document["components"]["schemas"]
    for path in ("/v1/events", "/v1/events/batch"):
        answer = document["paths"][path]["post"]["responses"]["202"]
        served = _resolved(answer["content"]["application/json"]["schema"], components)
        ours = typed.Accepted.model_json_schema(ref_template="#/components/schemas/{model}")
        ours_components = {**components, **ours.pop("$defs", {})}
        ours = _resolved(ours, ours_components)
        del ours["properties"]["appended"]  # from a header, beside the body
        ours.pop("description", None)
        assert ours == served


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (typed.LoggedEvent, wire.LoggedEvent),
        (typed.TimelineBody, wire.TimelineBody),
        (typed.EventsBody, wire.EventsBody),
        (typed.RecordItem, wire.RecordItem),
        (typed.RecordBody, wire.RecordBody),
    ],
)
def test_the_typed_bodies_have_the_apis_fields(
    ours: type[BaseModel], theirs: type[BaseModel]
) -> None:
    assert list(ours.model_fields) == list(theirs.model_fields)
    for name, field in theirs.model_fields.items():
        mine = ours.model_fields[name]
        assert (mine.description, mine.is_required()) == (field.description, field.is_required())


@asynccontextmanager
async def chancery_over_the_app() -> AsyncIterator[tuple[AsyncClient, httpx.AsyncClient]]:
    """The client, and a bare httpx client, both over the API app with the article."""
    reader = InMemoryReadModelReader()
    for i, event in enumerate(article()):
        reader.append(event, recorded_at=RECORDED.replace(minute=i))
    app = create_api(
        ApiSettings(),
        reader=reader,
        authenticator=Authenticator(KeyRing(), None, enabled=False),
        clock=lambda: NOON,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            AsyncClient("http://api", transport=transport) as client,
            httpx.AsyncClient(transport=transport, base_url="http://api") as bare,
        ):
            yield client, bare


def as_sent(body: BaseModel) -> Any:
    """A typed answer as JSON again: events in the contract's canonical form."""

    def plain(value: Any) -> Any:
        if isinstance(value, EventEnvelope):
            return json.loads(value.model_dump_json(exclude_none=True))
        if isinstance(value, BaseModel):
            return {name: plain(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    fields = json.loads(body.model_dump_json(exclude={"position"}))
    events = plain(body)
    merged = _merge(fields, events)
    return {"position": getattr(body, "position", None), **merged}


def _merge(dumped: Any, with_events: Any) -> Any:
    """`dumped` (the body as JSON) with each event replaced by its canonical JSON."""
    if isinstance(dumped, dict) and isinstance(with_events, dict):
        out = {}
        for key, value in dumped.items():
            other = with_events.get(key)
            out[key] = other if key == "event" and _is_event(other) else _merge(value, other)
        return out
    if isinstance(dumped, list) and isinstance(with_events, list):
        return [_merge(a, b) for a, b in zip(dumped, with_events, strict=True)]
    return dumped


def _is_event(value: Any) -> bool:
    return isinstance(value, dict) and value.get("specversion") == "1.0"


READS: list[tuple[str, tuple[Any, ...], dict[str, Any], str]] = [
    ("relation", ("usa", "CHN"), {}, "/v1/relations/usa/CHN"),
    ("relation", ("IRN", "SAU"), {"as_of": "2023-02-28"}, "/v1/relations/IRN/SAU?as_of=2023-02-28"),
    (
        "relation",
        ("IRN", "SAU"),
        {"known_at": "2023-05-12T09:05:00+00:00"},
        "/v1/relations/IRN/SAU?known_at=2023-05-12T09:05:00%2B00:00",
    ),
    ("country_relations", ("CHN",), {}, "/v1/countries/CHN/relations?sort=score&order=desc"),
    ("scores", ("IRN", "SAU"), {}, "/v1/relations/IRN/SAU/scores?bucket=week"),
    ("itinerary", ("li-hui",), {}, "/v1/itineraries/li-hui"),
    ("person", ("li-hui",), {}, "/v1/people/li-hui"),
    ("event", ("wang-yi-sullivan-vienna-talks",), {}, "/v1/events/wang-yi-sullivan-vienna-talks"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "url"), READS)
async def test_every_answer_reads_back_as_the_api_sent_it(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any], url: str
) -> None:
    from datetime import date, datetime

    typed_kwargs = {
        k: (date.fromisoformat(v) if k == "as_of" else datetime.fromisoformat(v))
        for k, v in kwargs.items()
    }
    async with chancery_over_the_app() as (client, bare):
        body = await getattr(client, method)(*args, **typed_kwargs)
        sent = (await bare.get(url)).json()
    assert json.dumps(as_sent(body)) == json.dumps(sent)  # the same members, in the same order
    if method in {"relation", "itinerary"}:  # what `chancery relation --json` prints
        assert json.dumps(cli_json(body)) == json.dumps(sent)


LISTINGS: list[tuple[str, tuple[Any, ...], dict[str, Any], str, dict[str, str]]] = [
    ("relations", ("CHN",), {}, "/v1/relations", {"country": "CHN"}),
    ("record", ("IRN", "SAU"), {}, "/v1/relations/IRN/SAU/record", {}),
    ("timeline", (), {"pair": ("CHN", "USA")}, "/v1/relations/CHN/USA/timeline", {}),
    ("timeline", (), {"country": "UKR"}, "/v1/countries/UKR/timeline", {}),
    ("visits", ("UKR",), {}, "/v1/visits", {"country": "UKR"}),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "path", "params"), LISTINGS)
async def test_every_page_reads_back_as_the_api_sent_it(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any], path: str, params: dict[str, str]
) -> None:
    async with chancery_over_the_app() as (client, bare):
        listing = getattr(client, method)(*args, limit=2, **kwargs)
        pages = [page async for page in listing.pages()]
        items = [item async for item in getattr(client, method)(*args, limit=2, **kwargs)]
        sent = []
        cursor = None
        while True:
            query: dict[str, Any] = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await bare.get(path, params=query)).json()
            sent.append(page)
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert json.dumps([as_sent(page) for page in pages]) == json.dumps(sent)
    assert len(items) == sum(len(page["items"]) for page in sent) > 0
    events = [getattr(item, "event", None) for item in items]
    if any(events):
        assert all(decode_event(e.model_dump_json()) == e for e in events if e is not None)
