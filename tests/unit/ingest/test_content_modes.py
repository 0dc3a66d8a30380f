"""The CloudEvents HTTP binding's content modes, with the official SDK as the client.

Binary mode (attributes in `ce-*` headers, the data as the body) gets what structured mode
gets: the same validation, idempotency, errors and answers. The SDK's two APIs are both
clients here: `cloudevents.v1.conversion` (the long-standing `to_binary` / `to_structured`,
which sends header values as they are) and `cloudevents.core.bindings.http` (which
percent-encodes them as the binding says). The edge cases the SDK does not make are made
by hand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_binary as core_to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as CoreCloudEvent
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent

from chancery.contract import decode_event
from tests.twins.ingest import InMemoryEventPublisher, InMemoryIdempotencyStore

from .support import Credentials, credentials, ingest_client, make_event

pytestmark = pytest.mark.unit

PROBLEM = "application/problem+json"


@pytest.fixture
def publisher() -> InMemoryEventPublisher:
    return InMemoryEventPublisher()


@pytest.fixture
def creds() -> Credentials:
    return credentials()


@pytest.fixture
async def client(
    publisher: InMemoryEventPublisher, creds: Credentials
) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(publisher, InMemoryIdempotencyStore(), creds) as c:
        yield c


def sdk_event(event: dict[str, Any]) -> CloudEvent:
    attributes = {k: v for k, v in event.items() if k != "data"}
    return CloudEvent(attributes, event["data"])


def core_event(event: dict[str, Any]) -> CoreCloudEvent:
    attributes = {k: v for k, v in event.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])  # this API takes datetimes
    return CoreCloudEvent(attributes=attributes, data=event["data"])


def binary(event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """`event` in binary mode, as the SDK sends it."""
    return to_binary(sdk_event(event))


async def post(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes | str
) -> httpx.Response:
    return await client.post("/v1/events", headers=headers, content=body)


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    named = {e["field"] for e in body.get("errors", [])}
    for field in fields:
        assert field in named, f"{field} not named in {body}"
        assert field in body["detail"], body["detail"]
    return body


# --- the SDK as the client -----------------------------------------------------------------


@pytest.mark.parametrize("to_http", [to_binary, to_structured], ids=["binary", "structured"])
async def test_the_sdk_in_either_mode_gets_202_and_a_resubmission_the_same_answer(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher, to_http: Any
) -> None:
    event = make_event("diplomacy.meeting.held", "sdk-1")
    headers, body = to_http(sdk_event(event))

    first = await post(client, headers, body)
    again = await post(client, headers, body)

    assert first.status_code == again.status_code == 202, first.text
    assert again.content == first.content
    assert [first.headers["Chancery-Appended"], again.headers["Chancery-Appended"]] == ["1", "0"]
    (record,) = publisher.records()
    logged = decode_event(record.value)
    assert logged.id == "sdk-1"
    assert logged.data.model_dump(mode="json", exclude_none=True) == event["data"]


async def test_the_core_sdk_percent_encodes_and_its_binary_event_is_accepted(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    event = make_event(
        "diplomacy.meeting.held", "sdk-2", subject='Wang Yi & Sullivan: "candid" 100% talks, 维也纳'
    )
    message = core_to_binary(core_event(event), JSONFormat())
    assert "%20" in message.headers["ce-subject"]  # the SDK did encode it

    first = await post(client, message.headers, message.body)
    again = await post(client, message.headers, message.body)

    assert first.status_code == again.status_code == 202, first.text
    assert again.content == first.content
    (record,) = publisher.records()
    assert decode_event(record.value).subject == event["subject"]


async def test_one_event_in_binary_then_structured_mode_is_one_event(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    event = make_event("diplomacy.relations.changed", "both-modes")
    as_binary = await post(client, *binary(event))
    as_structured = await post(client, *to_structured(sdk_event(event)))

    assert as_binary.status_code == as_structured.status_code == 202
    assert as_structured.content == as_binary.content
    assert as_structured.headers["Chancery-Appended"] == "0"
    assert len(publisher.records()) == 1


async def test_a_binary_event_with_a_bad_ce_type_is_422_naming_ce_type(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    headers, body = binary(make_event(id_="bad-type", type="diplomacy.treaty.signed"))

    refused = await post(client, headers, body)

    problem = assert_problem(refused, 422, "ce-type")
    assert "diplomacy.treaty.signed" in problem["detail"] + json.dumps(problem["errors"])
    assert publisher.calls == 0


async def test_a_binary_event_with_other_content_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    event = make_event(id_="changed")
    assert (await post(client, *binary(event))).status_code == 202

    changed = await post(client, *binary({**event, "time": "2023-05-28T08:00:00Z"}))

    assert_problem(changed, 409)


# --- binary mode by hand: headers -------------------------------------------------------------


def by_hand(event: dict[str, Any], **headers: str) -> tuple[dict[str, str], bytes]:
    """`event` in binary mode with plain header values, then `headers` (`ce_id=...`;
    an empty value removes the header)."""
    out = {f"ce-{k}": str(v) for k, v in event.items() if k not in ("data", "datacontenttype")}
    out["content-type"] = "application/json"
    for name, value in headers.items():
        header = name.replace("_", "-")
        out.pop(header, None)
        if value:
            out[header] = value
    return out, json.dumps(event["data"]).encode()


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro \u20ac \U0001f600"),
        ("lower%2fcase%e2%82%ac", "lower/case\u20ac"),
        ("%41%42C", "ABC"),  # needlessly encoded: accepted
        ('"quoted value \\"with\\" escapes"', 'quoted value "with" escapes'),
        ('"50%25 quoted"', "50% quoted"),
        (
            "raw spaces, as the binding's earlier versions had",
            "raw spaces, as the binding's earlier versions had",
        ),
    ],
)
async def test_header_values_are_percent_decoded_as_the_binding_says(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher, encoded: str, decoded: str
) -> None:
    headers, body = by_hand(make_event(id_="pct"), ce_subject=encoded)

    accepted = await post(client, headers, body)

    assert accepted.status_code == 202, accepted.text
    (record,) = publisher.records()
    assert decode_event(record.value).subject == decoded


@pytest.mark.parametrize(
    "encoded",
    [
        "%C0%A0",  # overlong UTF-8 for a space: must be refused
        "%FF",
        "100%",
        "%zz",
        '"unterminated',
        "caf\u00e9",  # a raw non-ASCII byte: not percent-encoded
    ],
)
async def test_a_header_value_that_does_not_decode_is_422_naming_it(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher, encoded: str
) -> None:
    headers, body = by_hand(make_event(id_="bad-pct"))
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"ce-subject", encoded.encode("latin-1")))

    refused = await client.post("/v1/events", headers=raw, content=body)

    assert_problem(refused, 422, "ce-subject")
    assert publisher.calls == 0


@pytest.mark.parametrize("missing", ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"])
async def test_a_missing_required_header_is_422_naming_it(
    client: httpx.AsyncClient, missing: str
) -> None:
    headers, body = by_hand(make_event(id_="missing"), **{missing.replace("-", "_"): ""})
    assert_problem(await post(client, headers, body), 422, missing)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ce-specversion", "0.3"),
        ("ce-id", "has spaces%20inside"),
        ("ce-time", "yesterday"),
        ("ce-source", "%20"),
        ("ce-recordedtime", "2024-01-01T00:00:00Z"),
        ("ce-partitionkey", "CHN|RUS"),
        ("ce-datacontenttype", "application/json"),
        ("ce-colour", "blue"),  # an extension Chancery does not know
    ],
)
async def test_an_invalid_or_refused_attribute_is_422_naming_its_header(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher, header: str, value: str
) -> None:
    headers, body = by_hand(make_event(id_="attr"), **{header.replace("-", "_"): value})
    assert_problem(await post(client, headers, body), 422, header)
    assert publisher.calls == 0


async def test_a_header_given_twice_is_422(client: httpx.AsyncClient) -> None:
    headers, body = by_hand(make_event(id_="twice"))
    raw = [(k.encode(), v.encode()) for k, v in headers.items()] + [(b"ce-id", b"other")]
    assert_problem(await client.post("/v1/events", headers=raw, content=body), 422, "ce-id")


# --- binary mode by hand: the body and its Content-Type ----------------------------------------


async def test_without_content_type_the_data_is_json(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    event = make_event(id_="no-content-type")
    headers, body = by_hand(event, content_type="")

    accepted = await post(client, headers, body)

    assert accepted.status_code == 202, accepted.text
    (record,) = publisher.records()
    assert decode_event(record.value).datacontenttype == "application/json"


@pytest.mark.parametrize("media", ["text/plain", "application/xml", "application/octet-stream"])
async def test_a_data_media_type_other_than_json_is_415(
    client: httpx.AsyncClient, media: str
) -> None:
    headers, body = by_hand(make_event(id_="wrong-media"), content_type=media)
    response = await post(client, headers, body)
    assert response.status_code == 415
    assert "datacontenttype" in response.json()["detail"]


async def test_json_with_parameters_is_json(client: httpx.AsyncClient) -> None:
    headers, body = by_hand(
        make_event(id_="charset"), content_type="application/json; charset=utf-8"
    )
    assert (await post(client, headers, body)).status_code == 202


async def test_invalid_data_names_its_field_as_structured_mode_does(
    client: httpx.AsyncClient,
) -> None:
    event = make_event(id_="bad-data")
    event["data"]["actor1"] = "XXXX"
    assert_problem(await post(client, *by_hand(event)), 422, "data.actor1")


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    headers, _ = by_hand(make_event(id_="not-json"))
    response = await post(client, headers, b"{not json")
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM


async def test_a_cloudevents_media_type_is_structured_mode_whatever_the_headers(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    """The binding decides by Content-Type: `ce-` headers beside a structured body are
    ignored (a sender may add them), and the body is the event."""
    event = make_event(id_="structured-with-headers")
    headers = {"content-type": "application/cloudevents+json", "ce-type": "ignored"}
    assert (await post(client, headers, json.dumps(event))).status_code == 202
    assert len(publisher.records()) == 1


async def test_the_openapi_document_describes_binary_mode(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    operation = doc["paths"]["/v1/events"]["post"]

    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject"}
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/cloudevents+json", "application/json"}
    either = doc["components"]["schemas"]["EventOrData"]["anyOf"]
    assert {"$ref": "#/components/schemas/MeetingHeldData"} in either
    assert "Binary" in operation["description"]
