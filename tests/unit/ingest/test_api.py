"""Ingest over HTTP, on its in-memory twins: what a client sends and what it gets back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from chancery.contract import decode_event, parse_incoming, stamp
from chancery.positions import Position
from tests.twins.ingest import InMemoryEventPublisher, InMemoryIdempotencyStore, InMemoryTargetIndex

from .support import NOW, SOURCE, Credentials, credentials, ingest_client, make_event

pytestmark = pytest.mark.unit

PROBLEM = "application/problem+json"


@pytest.fixture
def creds() -> Credentials:
    return credentials()


@pytest.fixture
def publisher() -> InMemoryEventPublisher:
    return InMemoryEventPublisher()


@pytest.fixture
def store() -> InMemoryIdempotencyStore:
    return InMemoryIdempotencyStore()


@pytest.fixture
async def client(
    publisher: InMemoryEventPublisher, store: InMemoryIdempotencyStore, creds: Credentials
) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(publisher, store, creds, max_batch_events=5, max_body_bytes=8192) as c:
        yield c


def assert_problem(response: httpx.Response, status: int, *words: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    for word in words:
        assert word in json.dumps(body), f"{word!r} not named in {body}"
    return dict(body)


# --- accepted ----------------------------------------------------------------------------


@pytest.mark.parametrize("media", ["application/cloudevents+json", "application/json"])
async def test_one_event_is_accepted_with_its_position_and_logged_stamped(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher, media: str
) -> None:
    response = await client.post(
        "/v1/events", content=json.dumps(make_event()), headers={"content-type": media}
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"accepted", "position"}
    assert [set(a) for a in body["accepted"]] == [{"id", "position"}]
    assert body["accepted"][0]["id"] == "e-1"
    assert body["position"] == body["accepted"][0]["position"]
    (record,) = publisher.records()
    logged = decode_event(record.value)
    assert logged.partitionkey == "CHN|RUS" == record.key.decode()
    assert logged.recordedtime is not None
    position = Position.parse(body["position"])
    assert position.topic == "chancery.events"
    assert len(position.offsets) == 1


@pytest.mark.parametrize("media", ["application/cloudevents-batch+json", "application/json"])
async def test_a_batch_is_accepted_whole_and_its_position_covers_every_event(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher, media: str
) -> None:
    events = [
        make_event("diplomacy.event.coded", "b-1"),
        make_event("diplomacy.meeting.held", "b-2"),
        make_event("diplomacy.relations.changed", "b-3"),
    ]
    response = await client.post(
        "/v1/events/batch", content=json.dumps(events), headers={"content-type": media}
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert [a["id"] for a in body["accepted"]] == ["b-1", "b-2", "b-3"]
    covering = Position.parse(body["position"])
    for accepted in body["accepted"]:
        assert Position.parse(accepted["position"]).is_covered_by(covering.offsets)
    assert len(publisher.records()) == 3


# --- all or nothing ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [[0], [2], [4], [1, 3]])
async def test_an_invalid_event_at_any_index_refuses_the_whole_batch(
    client: httpx.AsyncClient,
    publisher: InMemoryEventPublisher,
    store: InMemoryIdempotencyStore,
    bad: list[int],
) -> None:
    events = [make_event(id_=f"n-{i}") for i in range(5)]
    for i in bad:
        events[i]["data"]["actor1"] = "XXXX"  # not a state nor an organisation

    response = await client.post("/v1/events/batch", json=events)

    body = assert_problem(response, 422, "nothing was published")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert sorted({e["index"] for e in errors}) == bad
    assert {e["field"] for e in errors} == {"data.actor1"}
    assert publisher.calls == 0
    assert publisher.records() == []
    assert store.records == {}


async def test_every_bad_field_of_every_bad_event_is_named(client: httpx.AsyncClient) -> None:
    events = [make_event(id_="ok"), make_event(id_="bad one", time="yesterday")]
    del events[0]["data"]["cameo"]

    body = assert_problem(await client.post("/v1/events/batch", json=events), 422)

    named = {(e["index"], e["field"]) for e in body["errors"]}  # type: ignore[attr-defined]
    assert named == {(0, "data.cameo"), (1, "id"), (1, "time")}


async def test_extensions_set_by_the_service_are_refused_from_clients(
    client: httpx.AsyncClient,
) -> None:
    event = make_event(partitionkey="USA|XXX")
    assert_problem(await client.post("/v1/events", json=event), 422, "partitionkey")


# --- idempotency ---------------------------------------------------------------------------


async def test_a_resubmission_gets_the_same_answer_and_appends_nothing(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    events = [make_event(id_="r-1"), make_event("diplomacy.meeting.held", "r-2")]
    first = await client.post("/v1/events/batch", json=events)
    again = await client.post("/v1/events/batch", json=events)
    single = await client.post("/v1/events", json=events[1])

    assert first.status_code == again.status_code == single.status_code == 202
    assert again.content == first.content
    assert single.json()["accepted"] == first.json()["accepted"][1:]
    assert len(publisher.records()) == 2
    appended = [r.headers["Chancery-Appended"] for r in (first, again, single)]
    assert appended == ["2", "0", "0"]


async def test_the_same_identity_with_other_content_is_a_conflict(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    await client.post("/v1/events", json=make_event(id_="c-1"))
    changed = make_event(id_="c-1", time="2023-05-28T08:00:00Z")

    body = assert_problem(await client.post("/v1/events", json=changed), 409, "c-1", SOURCE)

    assert body["errors"][0]["index"] == 0  # type: ignore[index]
    assert len(publisher.records()) == 1


async def test_a_batch_with_a_conflict_publishes_none_of_its_new_events(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher, store: InMemoryIdempotencyStore
) -> None:
    await client.post("/v1/events", json=make_event(id_="c-1"))
    batch = [make_event(id_="new-1"), make_event(id_="c-1", time="2023-05-28T08:00:00Z")]

    body = assert_problem(await client.post("/v1/events/batch", json=batch), 409)

    assert [e["index"] for e in body["errors"]] == [1]  # type: ignore[attr-defined]
    assert len(publisher.records()) == 1
    assert all(r.state == "done" for r in store.records.values())
    assert len(store.records) == 1  # the claim of new-1 was released


async def test_one_identity_twice_in_a_batch_same_content_is_one_event(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    event = make_event(id_="twice")
    response = await client.post("/v1/events/batch", json=[event, event])

    assert response.status_code == 202
    first, second = response.json()["accepted"]
    assert first == second
    assert len(publisher.records()) == 1


async def test_one_identity_twice_in_a_batch_other_content_is_a_conflict(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    batch = [make_event(id_="twice"), make_event(id_="twice", time="2023-05-28T08:00:00Z")]

    assert_problem(await client.post("/v1/events/batch", json=batch), 409, "differs from event 0")
    assert publisher.calls == 0


# --- limits and errors ---------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    big = [make_event(id_=f"big-{i}") for i in range(5)]
    big[0]["data"]["source_url"] = "https://news.example/" + "x" * 9000
    assert_problem(await client.post("/v1/events/batch", json=big), 413, "8192 bytes")


async def test_a_streamed_body_without_length_is_cut_at_the_limit(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 1024

    response = await client.post(
        "/v1/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)
    assert publisher.calls == 0


@pytest.mark.parametrize("media", ["text/plain", "application/xml", None])
async def test_a_wrong_content_type_is_415(client: httpx.AsyncClient, media: str | None) -> None:
    headers = {"content-type": media} if media else {}
    response = await client.post("/v1/events", content=b"{}", headers=headers)
    assert_problem(response, 415, "Content-Type must be one of")


async def test_the_batch_media_type_is_not_taken_for_one_event(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events",
        content=json.dumps(make_event()),
        headers={"content-type": "application/cloudevents-batch+json"},
    )
    assert_problem(response, 415)


@pytest.mark.parametrize("body", [b'{"id": ', b"[1, 2", b"", b"NaN", b"\xff\xfe"])
async def test_malformed_json_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/v1/events", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "JSON")


async def test_a_batch_over_the_configured_size_is_422(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    events = [make_event(id_=f"many-{i}") for i in range(6)]
    assert_problem(await client.post("/v1/events/batch", json=events), 422, "at most 5")
    assert publisher.calls == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [([], "empty"), ({"not": "an array"}, "JSON array")],
)
async def test_a_batch_that_is_not_a_list_of_events_is_422(
    client: httpx.AsyncClient, body: object, words: str
) -> None:
    assert_problem(await client.post("/v1/events/batch", json=body), 422, words)


async def test_one_event_that_is_not_an_object_is_422(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/events", json=[make_event()]), 422, "JSON object")


async def test_an_unknown_type_names_the_known_ones(client: httpx.AsyncClient) -> None:
    event = make_event(type="diplomacy.treaty.signed")
    assert_problem(
        await client.post("/v1/events", json=event), 422, "type", "diplomacy.meeting.held"
    )


# --- retractions ---------------------------------------------------------------------------


async def test_a_retraction_is_keyed_like_its_target(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    target = make_event("diplomacy.meeting.held", "t-1")
    first = await client.post("/v1/events", json=target)
    from .support import retraction

    second = await client.post("/v1/events", json=retraction("x-1", "t-1"))

    assert second.status_code == 202, second.text
    a, b = publisher.records()
    assert a.key == b.key == b"CHN|USA"
    assert decode_event(b.value).partitionkey == "CHN|USA"
    p1 = Position.parse(first.json()["position"])
    p2 = Position.parse(second.json()["position"])
    assert p1.offsets.keys() == p2.offsets.keys()


async def test_a_retraction_of_an_unknown_event_is_refused(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    from .support import retraction

    response = await client.post("/v1/events", json=retraction("x-2", "never-sent"))

    body = assert_problem(response, 422, "data.target", "no record")
    assert body["errors"][0]["index"] == 0  # type: ignore[index]
    assert publisher.calls == 0


async def test_a_retraction_and_its_target_in_one_batch_share_a_key(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    from .support import retraction

    batch = [retraction("x-3", "t-3"), make_event("diplomacy.stance.declared", "t-3")]
    response = await client.post("/v1/events/batch", json=batch)

    assert response.status_code == 202, response.text
    keys = {r.key for r in publisher.records()}
    assert len(keys) == 1


async def test_a_retraction_of_a_retraction_in_one_batch_is_refused(
    client: httpx.AsyncClient,
) -> None:
    from .support import retraction

    batch = [
        make_event(id_="t-4"),
        retraction("x-4", "t-4"),
        retraction("x-5", "x-4"),
    ]
    body = assert_problem(await client.post("/v1/events/batch", json=batch), 422, "final")
    assert [e["index"] for e in body["errors"]] == [2]  # type: ignore[attr-defined]


def logged_long_ago(index: InMemoryTargetIndex, event: dict[str, object], key: str) -> None:
    """`event` as the read models hold it: stamped, its idempotency record long expired."""
    index.add(stamp(parse_incoming(event), recorded_at=NOW, partition_key=key))


async def test_a_retraction_of_a_target_older_than_the_idempotency_window_is_keyed_like_it(
    publisher: InMemoryEventPublisher, store: InMemoryIdempotencyStore, creds: Credentials
) -> None:
    from .support import retraction

    index = InMemoryTargetIndex()
    logged_long_ago(index, make_event("diplomacy.meeting.held", "old-1"), "CHN|USA")
    async with ingest_client(publisher, store, creds, targets=index) as client:
        response = await client.post("/v1/events", json=retraction("x-old-1", "old-1"))
        unknown = await client.post("/v1/events", json=retraction("x-old-2", "never-sent"))

    assert response.status_code == 202, response.text
    (record,) = publisher.records()
    assert record.key == b"CHN|USA"
    assert decode_event(record.value).partitionkey == "CHN|USA"
    assert_problem(unknown, 422, "data.target", "no record")


async def test_a_retraction_of_an_old_retraction_is_refused(
    publisher: InMemoryEventPublisher, store: InMemoryIdempotencyStore, creds: Credentials
) -> None:
    from .support import retraction

    index = InMemoryTargetIndex()
    logged_long_ago(index, make_event("diplomacy.meeting.held", "old-3"), "CHN|USA")
    logged_long_ago(index, retraction("old-4", "old-3"), "CHN|USA")
    async with ingest_client(publisher, store, creds, targets=index) as client:
        response = await client.post("/v1/events", json=retraction("x-old-4", "old-4"))

    assert_problem(response, 422, "data.target", "final")
    assert publisher.calls == 0


async def test_read_models_that_cannot_be_asked_mean_503(
    publisher: InMemoryEventPublisher, store: InMemoryIdempotencyStore, creds: Credentials
) -> None:
    from .support import retraction

    index = InMemoryTargetIndex(available=False)
    async with ingest_client(publisher, store, creds, targets=index) as client:
        recent = await client.post("/v1/events", json=make_event(id_="t-5"))
        known = await client.post("/v1/events", json=retraction("x-5", "t-5"))
        old = await client.post("/v1/events", json=retraction("x-6", "old-6"))

    assert recent.status_code == known.status_code == 202  # its key is still remembered
    assert_problem(old, 503, "read models")
    assert old.headers["Retry-After"]
    assert len(publisher.records()) == 2


# --- operations ----------------------------------------------------------------------------


async def test_healthz_and_readyz(
    client: httpx.AsyncClient, publisher: InMemoryEventPublisher
) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["kafka"]["ok"] is True

    publisher.available = False
    down = await client.get("/readyz")

    assert down.status_code == 503
    assert down.headers["Retry-After"] == "2"
    assert down.json()["checks"]["kafka"]["ok"] is False


async def test_openapi_has_the_event_schema_and_an_example_of_every_type(
    client: httpx.AsyncClient,
) -> None:
    from chancery.contract import EVENT_TYPES, parse_incoming

    doc = (await client.get("/openapi.json")).json()

    assert "Event" in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    single = doc["paths"]["/v1/events"]["post"]
    examples = single["requestBody"]["content"]["application/cloudevents+json"]["examples"]
    assert set(examples) == set(EVENT_TYPES)
    for example in examples.values():
        parse_incoming(example["value"])
    refs = json.dumps(doc)
    for name in {r.split("/")[-1] for r in _refs(doc)}:
        assert name in doc["components"]["schemas"], f"dangling $ref {name} in {refs[:80]}"
    batch = doc["paths"]["/v1/events/batch"]["post"]
    assert batch["security"] == [{"bearer": ["events:write"]}]
    # The POST routes answer by themselves (DirectRoute); their answers are still documented.
    for operation in (single, batch):
        answer = operation["responses"]["202"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": "#/components/schemas/AcceptedBody"}
        assert {"400", "401", "409", "413", "415", "422", "503"} <= set(operation["responses"])


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
