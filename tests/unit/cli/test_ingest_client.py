"""The CLI's batch sender (chancery.client underneath) against httpx's MockTransport:
retries, Retry-After, refusals, and what each means to an operator."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from chancery.client.retrying import retry_after_s
from services.cli.errors import CliError, ServiceDown
from services.cli.ingest_client import (
    BatchAccepted,
    BatchRefused,
    IngestClient,
    merge_positions,
)

pytestmark = pytest.mark.unit

URL = "http://ingest.test"
EVENTS = [b'{"id":"1"}', b'{"id":"2"}']


def accepted(request: httpx.Request, appended: int | None = None) -> httpx.Response:
    events = json.loads(request.content)
    items = [{"id": e["id"], "position": "chancery.events@0:1"} for e in events]
    headers = {} if appended is None else {"Chancery-Appended": str(appended)}
    return httpx.Response(
        202, json={"accepted": items, "position": "chancery.events@0:1"}, headers=headers
    )


def client(
    responses: list[Callable[[httpx.Request], httpx.Response]], sleeps: list[float]
) -> tuple[IngestClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1](request)

    return (
        IngestClient(
            URL,
            "secret",
            transport=httpx.MockTransport(handler),
            sleep=sleeps.append,
            retry_for_s=60,
            on_wait=lambda _: None,
        ),
        seen,
    )


def backed_off(sleeps: list[float], *expected: float) -> bool:
    """Each wait is the exponential step (from 0.5 s) plus at most 0.5 s of jitter."""
    return len(sleeps) == len(expected) and all(
        step <= slept <= step + 0.5 for slept, step in zip(sleeps, expected, strict=True)
    )


def unavailable(retry_after: str | None = None) -> Callable[[httpx.Request], httpx.Response]:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"title": "Service Unavailable", "detail": "the event log is unavailable"}
    return lambda _: httpx.Response(503, json=body, headers=headers)


def test_a_batch_is_posted_as_a_cloudevents_batch_with_the_key() -> None:
    sleeps: list[float] = []
    ingest, seen = client([accepted], sleeps)
    result = ingest.send(EVENTS)
    assert result == BatchAccepted(2, "chancery.events@0:1", None)
    (request,) = seen
    assert request.url.path == "/v1/events/batch"
    assert request.headers["content-type"] == "application/cloudevents-batch+json"
    assert request.headers["authorization"] == "Bearer secret"
    assert json.loads(request.content) == [{"id": "1"}, {"id": "2"}]


def test_503_is_retried_after_the_time_retry_after_says() -> None:
    sleeps: list[float] = []
    ingest, seen = client([unavailable("7"), unavailable("3"), accepted], sleeps)
    assert isinstance(ingest.send(EVENTS), BatchAccepted)
    assert sleeps == [7.0, 3.0]
    assert len(seen) == 3
    assert seen[0].content == seen[2].content  # the very same request again


def test_503_without_retry_after_backs_off_exponentially() -> None:
    sleeps: list[float] = []
    ingest, _ = client([unavailable(), unavailable(), unavailable(), accepted], sleeps)
    assert isinstance(ingest.send(EVENTS), BatchAccepted)
    assert backed_off(sleeps, 0.5, 1.0, 2.0), sleeps


def test_ingest_unavailable_for_too_long_is_reported_as_down() -> None:
    sleeps: list[float] = []
    ingest, _ = client([unavailable("25")], sleeps)
    with pytest.raises(ServiceDown) as caught:
        ingest.send(EVENTS)
    assert sleeps == [25.0, 25.0]
    assert caught.value.message.startswith(f"ingest is not reachable at {URL}: still failing")
    assert "503: the event log is unavailable" in caught.value.message


def test_a_lost_connection_is_retried() -> None:
    sleeps: list[float] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    ingest, _ = client([refuse, refuse, accepted], sleeps)
    assert isinstance(ingest.send(EVENTS), BatchAccepted)
    assert backed_off(sleeps, 0.5, 1.0), sleeps


def test_a_batch_refused_as_a_whole_comes_back_with_the_reasons() -> None:
    body = {
        "title": "Conflict",
        "detail": "an event with the same source and id was accepted with different content",
        "errors": [{"index": 1, "id": "2", "message": "was accepted before"}],
    }
    ingest, _ = client([lambda _: httpx.Response(409, json=body)], [])
    result = ingest.send(EVENTS)
    assert isinstance(result, BatchRefused)
    assert result.status == 409
    assert result.message == (
        "409 Conflict: an event with the same source and id was accepted with different "
        "content [#1: was accepted before]"
    )


def test_a_refused_key_stops_everything() -> None:
    body = {"title": "Unauthorized", "detail": "unknown API key"}
    ingest, _ = client([lambda _: httpx.Response(401, json=body)], [])
    with pytest.raises(CliError, match=r"ingest at http://ingest.test refused the API key \(401"):
        ingest.send(EVENTS)


def test_new_events_are_what_ingest_says_it_appended() -> None:
    ingest, _ = client([lambda r: accepted(r, appended=0)], [])
    result = ingest.send(EVENTS)
    assert isinstance(result, BatchAccepted)
    assert result.new == 0


def test_new_events_are_unknown_when_ingest_does_not_say() -> None:
    ingest, _ = client([accepted], [])
    result = ingest.send(EVENTS)
    assert isinstance(result, BatchAccepted)
    assert result.new is None


def test_nothing_answering_is_found_before_any_file_is_read() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    ingest, _ = client([refuse], [])
    with pytest.raises(ServiceDown, match=r"ingest is not reachable at http://ingest\.test: conn"):
        ingest.check_reachable()


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("Mon, 01 Jan 2024 12:00:30 GMT", now=now) == 30.0
    assert retry_after_s("garbage", now=now) is None
    assert retry_after_s("9999") == 120.0


def test_positions_merge_per_partition() -> None:
    assert merge_positions("t@0:5,1:2", "t@1:9,2:1") == "t@0:5,1:9,2:1"
    assert merge_positions(None, "t@0:1") == "t@0:1"


def test_a_retry_after_of_zero_backs_off_instead() -> None:
    sleeps: list[float] = []
    ingest, _ = client([unavailable("0"), unavailable("0"), accepted], sleeps)
    assert isinstance(ingest.send(EVENTS), BatchAccepted)
    assert backed_off(sleeps, 0.5, 1.0), sleeps
