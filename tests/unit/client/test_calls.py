"""The client's own logic against httpx's MockTransport, for both clients: what it sends,
how it reads answers and problems, what it retries and how long it waits, what a session
carries into its next read, and how listings follow their cursor."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from chancery.client import (
    Accepted,
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    NotFound,
    NotYetApplied,
    RelationBody,
    RetryNotice,
    ServiceUnavailable,
    ServiceUnreachable,
    Unauthorized,
    UnexpectedAnswer,
)
from chancery.contract import MeetingHeld, encode_event
from tests.unit.domain.builders import meeting

pytestmark = pytest.mark.unit

API = "http://api.test"
INGEST = "http://ingest.test"
Handler = Callable[[httpx.Request], httpx.Response]

RELATION: dict[str, Any] = {
    "position": "t@0:5",
    "pair": "CHN|USA",
    "parties": ["CHN", "USA"],
    "as_of": "2023-05-12",
    "known_at": None,
    "status": "full",
    "status_since": None,
    "status_events": [],
    "mediator": None,
    "partnership": None,
    "score": 1.5,
    "climate": "cordial",
    "event_count": 3,
    "quad_counts": {"1": 3, "2": 0, "3": 0, "4": 0},
    "last_contact": None,
    "next_contact": None,
}


@dataclass
class Front:
    """One of the two clients, driven the same way by the tests."""

    kind: str
    handler: Handler
    options: dict[str, Any] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    notices: list[RetryNotice] = field(default_factory=list)

    def _record(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def _options(self) -> dict[str, Any]:
        return {
            "api_key": "secret",
            "on_retry": self.notices.append,
            "transport": httpx.MockTransport(self._record),
            **self.options,
        }

    async def __call__(self, method: str, *args: Any, session: bool = False, **kw: Any) -> Any:
        """`client.<method>(*args, **kw)`; a listing is read to its end."""
        if self.kind == "sync":
            with Client(API, INGEST, sleep=self.sleeps.append, **self._options()) as client:
                target: Any = client.session() if session else client
                answer = getattr(target, method)(*args, **kw)
                return list(answer) if hasattr(answer, "pages") else answer

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        async with AsyncClient(API, INGEST, sleep=sleep, **self._options()) as aclient:
            atarget: Any = aclient.session() if session else aclient
            answer = getattr(atarget, method)(*args, **kw)
            if hasattr(answer, "pages"):
                return [item async for item in answer]
            return await answer

    async def in_session(self, steps: Callable[[Any], Any]) -> Any:
        """Run `steps(session)` (a list of (method, args, kwargs)) in one session."""
        results = []
        if self.kind == "sync":
            with (
                Client(API, INGEST, sleep=self.sleeps.append, **self._options()) as client,
                client.session() as session,
            ):
                for method, args, kw in steps(session):
                    results.append(getattr(session, method)(*args, **kw))
                return results, session.position
        async with (
            AsyncClient(API, INGEST, **self._options()) as aclient,
            aclient.session() as asession,
        ):
            for method, args, kw in steps(asession):
                results.append(await getattr(asession, method)(*args, **kw))
            return results, asession.position


FrontFactory = Callable[..., Front]


@pytest.fixture(params=["sync", "async"])
def front(request: pytest.FixtureRequest) -> FrontFactory:
    def make(handler: Handler, **options: Any) -> Front:
        return Front(request.param, handler, options)

    return make


def accepted(request: httpx.Request, *, position: str = "t@0:1,3:7") -> httpx.Response:
    body = json.loads(request.content)
    events = body if isinstance(body, list) else [body]
    items = [{"id": e["id"], "position": "t@0:1"} for e in events]
    return httpx.Response(
        202, json={"accepted": items, "position": position}, headers={"Chancery-Appended": "1"}
    )


def problem(status: int, detail: str, **more: Any) -> Handler:
    headers = {"content-type": "application/problem+json", **more.pop("headers", {})}
    body = {"type": "about:blank", "title": "T", "status": status, "detail": detail, **more}
    return lambda _: httpx.Response(status, json=body, headers=headers)


def sequence(*handlers: Handler) -> Handler:
    calls = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return handlers[min(calls["n"], len(handlers)) - 1](request)

    return handle


def relation(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=RELATION)


# --- posting ---------------------------------------------------------------------------------


async def test_one_event_goes_to_events_a_sequence_to_the_batch(front: FrontFactory) -> None:
    event = meeting("talks", "2023-05-10", "CHN", "USA")
    client = front(accepted)
    one = await client("post", event)
    batch = await client("post", [event, {"id": "raw"}, b'{"id":"bytes"}'])
    assert isinstance(one, Accepted)
    assert one.position == "t@0:1,3:7"
    assert one.appended == 1
    assert [a.id for a in batch.accepted] == ["talks", "raw", "bytes"]
    single, many = client.requests
    assert (str(single.url), single.headers["content-type"]) == (
        f"{INGEST}/v1/events",
        "application/cloudevents+json",
    )
    assert single.content == encode_event(event)  # the canonical encoding, as ingest keeps it
    assert (str(many.url), many.headers["content-type"]) == (
        f"{INGEST}/v1/events/batch",
        "application/cloudevents-batch+json",
    )
    assert json.loads(many.content)[1:] == [{"id": "raw"}, {"id": "bytes"}]
    assert single.headers["authorization"] == "Bearer secret"


async def test_a_503_is_sent_again_after_the_retry_after_it_carries(front: FrontFactory) -> None:
    client = front(
        sequence(
            problem(503, "Kafka is unavailable", headers={"Retry-After": "4"}),
            problem(503, "Kafka is unavailable", headers={"Retry-After": "2"}),
            accepted,
        )
    )
    answer = await client("post", [{"id": "a"}])
    assert answer.position == "t@0:1,3:7"
    assert client.sleeps == [4.0, 2.0]
    first, _, third = client.requests
    assert first.content == third.content  # the same request again: ingest is idempotent
    assert [str(n) for n in client.notices] == [
        "ingest: 503: Kafka is unavailable; retrying in 4.0 s",
        "ingest: 503: Kafka is unavailable; retrying in 2.0 s",
    ]


async def test_a_429_is_honoured_too(front: FrontFactory) -> None:
    client = front(sequence(problem(429, "slow down", headers={"Retry-After": "3"}), relation))
    assert (await client("relation", "CHN", "USA")).event_count == 3
    assert client.sleeps == [3.0]


async def test_retries_stop_before_waiting_past_the_budget(front: FrontFactory) -> None:
    client = front(problem(503, "rebuilding", headers={"Retry-After": "25"}), retry_for_s=60)
    with pytest.raises(ServiceUnavailable) as caught:
        await client("relation", "CHN", "USA")
    assert client.sleeps == [25.0, 25.0]  # a third wait would pass 60 s
    assert caught.value.waited_s == 50.0
    assert caught.value.retry_after_s == 25.0
    assert caught.value.reason == "503: rebuilding"


async def test_without_retry_after_the_client_backs_off(front: FrontFactory) -> None:
    client = front(
        sequence(problem(502, "bad gateway"), problem(502, "bad gateway"), relation),
    )
    await client("relation", "CHN", "USA")
    first, second = client.sleeps
    assert 0.5 <= first <= 1.0
    assert 1.0 <= second <= 1.5


async def test_a_lost_connection_is_retried_then_reported(front: FrontFactory) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = front(refuse, retry_for_s=2)
    with pytest.raises(ServiceUnreachable) as caught:
        await client("relation", "CHN", "USA")
    assert str(caught.value) == f"API is not reachable at {API}: connection refused"
    assert 1 <= len(client.sleeps) <= 3
    assert caught.value.waited_s == sum(client.sleeps) <= 2


async def test_no_budget_means_no_retry(front: FrontFactory) -> None:
    client = front(problem(503, "rebuilding", headers={"Retry-After": "1"}), retry_for_s=0)
    with pytest.raises(ServiceUnavailable):
        await client("relation", "CHN", "USA")
    assert client.sleeps == []
    assert len(client.requests) == 1


async def test_a_refusal_is_a_typed_error_with_the_problem(front: FrontFactory) -> None:
    errors = [
        {"index": 1, "id": "b", "field": "data.parties", "message": "too few", "type": "x"},
    ]
    client = front(problem(422, "invalid value for: data.parties", errors=errors, extra=1))
    with pytest.raises(InvalidRequest) as caught:
        await client("post", [{"id": "a"}, {"id": "b"}])
    error = caught.value
    assert (error.status, error.title, error.detail) == (
        422,
        "T",
        "invalid value for: data.parties",
    )
    (field_error,) = error.errors
    assert (field_error.index, field_error.id, field_error.field) == (1, "b", "data.parties")
    assert error.problem.model_extra == {"extra": 1}
    assert client.sleeps == []  # a refusal is not retried


@pytest.mark.parametrize(
    ("status", "kind"), [(401, Unauthorized), (404, NotFound), (409, Conflict)]
)
async def test_each_status_has_its_exception(
    front: FrontFactory, status: int, kind: type[Exception]
) -> None:
    client = front(problem(status, "no"))
    with pytest.raises(kind, match=r"answered .*: no"):
        await client("person", "li-hui")


async def test_an_answer_of_another_shape_is_unexpected(front: FrontFactory) -> None:
    client = front(lambda _: httpx.Response(200, json={"pair": "CHN|USA"}))
    with pytest.raises(UnexpectedAnswer, match="not a RelationBody"):
        await client("relation", "CHN", "USA")


# --- reading ---------------------------------------------------------------------------------


async def test_a_relation_is_typed_and_asked_as_documented(front: FrontFactory) -> None:
    client = front(relation)
    body = await client(
        "relation",
        "chn",
        "usa/x",
        as_of=date(2023, 2, 28),
        known_at=datetime(2023, 5, 12, 9, tzinfo=UTC),
        min_position="t@1:2",
    )
    assert isinstance(body, RelationBody)
    assert body.status == "full"
    (request,) = client.requests
    assert request.url.raw_path.split(b"?")[0] == b"/v1/relations/chn/usa%2Fx"
    assert dict(request.url.params) == {
        "as_of": "2023-02-28",
        "known_at": "2023-05-12T09:00:00+00:00",
        "min_position": "t@1:2",
    }


async def test_a_known_at_without_time_zone_is_refused_before_asking(front: FrontFactory) -> None:
    client = front(relation)
    with pytest.raises(ValueError, match="time zone"):
        await client("relation", "CHN", "USA", known_at=datetime(2023, 5, 12, 9))
    assert client.requests == []


async def test_a_listing_follows_its_cursor_to_the_end(front: FrontFactory) -> None:
    item = {key: value for key, value in RELATION.items() if key != "position"}
    pages: dict[str | None, dict[str, Any]] = {
        None: {"next_cursor": "c1", "items": [item, item]},
        "c1": {"next_cursor": "c2", "items": [item]},
        "c2": {"next_cursor": None, "items": []},
    }

    def listing(request: httpx.Request) -> httpx.Response:
        page = pages[request.url.params.get("cursor")]
        return httpx.Response(
            200,
            json={"position": "t@0:1", "country": "CHN", "sort": "score", "order": "desc", **page},
        )

    client = front(listing)
    items = await client("relations", "CHN", sort="last_contact", limit=2)
    assert len(items) == 3
    assert [r.url.params.get("cursor") for r in client.requests] == [None, "c1", "c2"]
    assert all(r.url.params["sort"] == "last_contact" for r in client.requests)
    assert all(r.url.params["limit"] == "2" for r in client.requests)


async def test_a_timeline_hands_out_typed_events(front: FrontFactory) -> None:
    event = meeting("talks", "2023-05-10", "CHN", "USA")
    page = {
        "position": "t@0:1",
        "timeline": "pair:CHN|USA",
        "items": [{"log_position": "t@0:0", "event": json.loads(encode_event(event))}],
        "next_cursor": None,
    }
    client = front(lambda _: httpx.Response(200, json=page))
    (entry,) = await client("timeline", pair=("CHN", "USA"), types=["meeting.held"])
    assert isinstance(entry.event, MeetingHeld)
    assert entry.event == event
    (request,) = client.requests
    assert request.url.path == "/v1/relations/CHN/USA/timeline"
    assert request.url.params.get_list("type") == ["meeting.held"]


async def test_a_timeline_is_of_a_pair_or_of_a_country(front: FrontFactory) -> None:
    client = front(relation)
    with pytest.raises(ValueError, match="exactly one"):
        await client("timeline", pair=("CHN", "USA"), country="CHN")


async def test_a_504_on_min_position_is_asked_again_then_answered(front: FrontFactory) -> None:
    late = problem(504, "not applied yet", headers={"Retry-After": "1"})
    client = front(sequence(late, late, relation), retry_for_s=0)
    body = await client("relation", "CHN", "USA", min_position="t@0:5")
    assert body.position == "t@0:5"
    assert client.sleeps == [1.0, 1.0]


async def test_a_504_is_reported_once_the_position_wait_is_over(front: FrontFactory) -> None:
    late = problem(504, "not applied yet", headers={"Retry-After": "1"})
    client = front(late, retry_for_s=0, position_wait_s=3)
    with pytest.raises(NotYetApplied):
        await client("relation", "CHN", "USA", min_position="t@0:5")
    assert client.sleeps == [1.0, 1.0, 1.0]


# --- sessions --------------------------------------------------------------------------------


def ingest_and_api(positions: dict[str, str]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "ingest.test":
            return accepted(request, position=positions["write"])
        return httpx.Response(200, json={**RELATION, "position": positions["read"]})

    return handle


async def test_a_session_reads_its_own_writes(front: FrontFactory) -> None:
    client = front(ingest_and_api({"write": "t@2:9", "read": "t@0:4,2:9"}))
    steps = [
        ("relation", ("CHN", "USA"), {}),
        ("post", ([{"id": "a"}],), {}),
        ("relation", ("CHN", "USA"), {}),
        ("relation", ("CHN", "USA"), {"min_position": "t@5:1"}),
    ]
    _, position = await client.in_session(lambda _: steps)
    first, _, second, third = client.requests
    assert "min_position" not in first.url.params  # nothing written or read yet
    # The write (2:9) merged with what the first read reflected (0:4,2:9).
    assert second.url.params["min_position"] == "t@0:4,2:9"
    assert third.url.params["min_position"] == "t@0:4,2:9,5:1"
    assert position == "t@0:4,2:9"


async def test_a_client_outside_a_session_carries_nothing(front: FrontFactory) -> None:
    client = front(ingest_and_api({"write": "t@2:9", "read": "t@0:4"}))
    await client("post", [{"id": "a"}])
    await client("relation", "CHN", "USA")
    assert "min_position" not in client.requests[1].url.params


def test_a_session_can_start_from_a_position_handed_over() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return relation(request)

    with Client(API, api_key="k", transport=httpx.MockTransport(handle)) as client:
        session = client.session(position="t@1:1")
        session.relation("CHN", "USA")
        assert session.position == "t@0:5,1:1"
        session.close()  # the connections are the client's
        client.relation("CHN", "USA")
    assert seen[0].url.params["min_position"] == "t@1:1"


def test_ping_says_whether_anything_answers() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with Client(transport=httpx.MockTransport(lambda _: httpx.Response(404))) as up:
        up.ping("ingest")
    with (
        Client(transport=httpx.MockTransport(refuse)) as down,
        pytest.raises(ServiceUnreachable, match="ingest is not reachable"),
    ):
        down.ping("ingest")


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        Client(api_key="a", token="b")
    with pytest.raises(ValueError, match="not an http"):
        Client(api_url="ftp://x")
