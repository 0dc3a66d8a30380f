"""Following /v1/stream with the client: the SSE format, resuming with Last-Event-ID after a
drop, pacing reconnections by the server's word, typed events; both clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chancery.client import (
    AsyncClient,
    Client,
    RetryNotice,
    ServiceUnreachable,
    SseMessage,
    StreamedEvent,
    Subscription,
    Unauthorized,
    UnexpectedAnswer,
)
from chancery.contract import MeetingHeld

pytestmark = pytest.mark.unit

URL = "http://api.test"
SEEDS = Path(__file__).resolve().parents[3] / "seeds" / "article.jsonl"


class Script:
    """Answers each GET /v1/stream with the next body; records the requests."""

    def __init__(self, *bodies: str | httpx.Response) -> None:
        self.bodies = list(bodies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = self.bodies.pop(0) if self.bodies else ""
        if isinstance(body, httpx.Response):
            return body
        return httpx.Response(
            200, content=body.encode(), headers={"content-type": "text/event-stream"}
        )


def events(subscription: Subscription[Any], count: int) -> list[Any]:
    out: list[Any] = []
    with subscription:
        for message in subscription:
            out.append(message)
            if len(out) == count:
                break
    return out


def client(script: Any, sleeps: list[float] | None = None, **options: Any) -> Client:
    return Client(
        URL,
        api_key="key",
        transport=httpx.MockTransport(script),
        sleep=(sleeps if sleeps is not None else []).append,
        **{"retry_for_s": 0, **options},
    )


def stream(script: Any, sleeps: list[float] | None = None, **options: Any) -> Subscription[Any]:
    after = options.pop("after", None)
    params = {k: options.pop(k) for k in ("types", "countries") if k in options}
    return client(script, sleeps, **options).stream(after=after, **params)


def test_fields_comments_and_multi_line_data_are_read() -> None:
    script = Script(
        ': hello\nretry: 2500\nid: t@0:1\nevent: update\ndata: {"a":\ndata: 1}\n\n'
        "data:no space\n\n",
    )
    assert events(stream(script), 2) == [
        SseMessage(event="update", data='{"a":\n1}', id="t@0:1"),
        SseMessage(event="message", data="no space", id="t@0:1"),
    ]


def test_an_id_counts_only_once_its_event_is_complete() -> None:
    script = Script("id: t@0:1\ndata: one\n\nid: t@0:2\ndata: tw", "id: t@0:2\ndata: two\n\n")
    got = events(stream(script), 2)
    assert [m.data for m in got] == ["one", "two"]
    assert script.requests[1].headers["last-event-id"] == "t@0:1"  # the second never completed


def test_a_ping_with_an_id_moves_the_position_without_a_message() -> None:
    script = Script(": ping\nid: t@0:9\n\n", "id: t@0:10\ndata: ten\n\n")
    assert [m.data for m in events(stream(script), 1)] == ["ten"]
    assert script.requests[1].headers["last-event-id"] == "t@0:9"


def test_the_subscription_knows_where_to_resume() -> None:
    script = Script("id: t@0:1\ndata: one\n\n: ping\nid: t@0:4\n\n", "id: t@0:5\ndata: five\n\n")
    subscription = stream(script)
    before = subscription.position
    assert before is None
    with subscription:
        assert next(subscription).data == "one"
        assert subscription.position == "t@0:1"
        assert next(subscription).data == "five"  # after the ping, the drop and the resume
        assert subscription.position == "t@0:5"
    assert script.requests[1].headers["last-event-id"] == "t@0:4"


def test_the_servers_retry_delay_is_honoured() -> None:
    sleeps: list[float] = []
    script = Script("retry: 2500\nid: t@0:1\ndata: one\n\n", "id: t@0:2\ndata: two\n\n")
    assert [m.data for m in events(stream(script, sleeps), 2)] == ["one", "two"]
    assert sleeps == [2.5]


def test_an_answer_that_is_no_event_stream_is_reported() -> None:
    def page(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>", headers={"content-type": "text/html"})

    with pytest.raises(UnexpectedAnswer, match=r"answered /v1/stream with text/html, not an event"):
        events(stream(page), 1)


def test_a_dropped_stream_resumes_after_the_last_complete_event() -> None:
    script = Script(
        "id: t@0:1\ndata: one\n\nid: t@0:2\ndata: two\n\nid: t@0:3\ndata: thr",  # cut
        "id: t@0:3\ndata: three\n\n",
    )
    notices: list[RetryNotice] = []
    sleeps: list[float] = []
    subscription = stream(
        script,
        sleeps,
        types=["diplomacy.meeting.held"],
        countries=["CHN"],
        on_retry=notices.append,
    )
    got = events(subscription, 3)
    assert [m.data for m in got] == ["one", "two", "three"]  # no gap, no duplicate
    first, second = script.requests
    assert "last-event-id" not in first.headers
    assert second.headers["last-event-id"] == "t@0:2"
    assert first.url.params.get_list("type") == ["diplomacy.meeting.held"]
    assert first.url.params.get_list("country") == ["CHN"]
    assert first.headers["authorization"] == "Bearer key"
    assert first.headers["accept"] == "text/event-stream"
    (slept,) = sleeps
    assert 1.0 <= slept <= 2.0  # backoff from 1 s, plus up to 1 s of jitter
    assert [str(n) for n in notices] == [
        f"stream interrupted (the API closed the stream); reconnecting from t@0:2 in {slept:.3g} s"
    ]
    (notice,) = notices
    assert (notice.reconnecting, notice.resume_from, notice.attempt) == (True, "t@0:2", 1)


def test_resuming_from_a_given_position_sends_it_at_once() -> None:
    script = Script("id: t@0:8\ndata: eight\n\n")
    assert [m.data for m in events(stream(script, after="t@0:7"), 1)] == ["eight"]
    assert script.requests[0].headers["last-event-id"] == "t@0:7"


def test_an_api_that_is_down_at_the_start_is_reported() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(ServiceUnreachable, match=r"API is not reachable at http://api\.test: conn"):
        events(stream(refuse), 1)


def test_the_first_connection_is_retried_within_the_clients_budget() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(
            200, text="id: t@0:1\ndata: one\n\n", headers={"content-type": "text/event-stream"}
        )

    sleeps: list[float] = []
    assert [m.data for m in events(stream(flaky, sleeps, retry_for_s=5), 1)] == ["one"]
    (slept,) = sleeps
    assert 0.5 <= slept <= 1.0


def test_a_refused_key_is_reported_with_the_problem() -> None:
    def refuse(_: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"title": "Unauthorized", "detail": "unknown key"})

    with pytest.raises(Unauthorized) as caught:
        events(stream(refuse), 1)
    assert (caught.value.status, caught.value.detail) == (401, "unknown key")


def test_after_a_first_success_a_lost_connection_is_retried() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 2:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        body = "id: t@0:1\ndata: one\n\n" if calls["n"] == 1 else "id: t@0:2\ndata: two\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    sleeps: list[float] = []
    assert [m.data for m in events(stream(flaky, sleeps), 2)] == ["one", "two"]
    first, second = sleeps  # the drop, then the refused connection: backoff doubles
    assert 1.0 <= first <= 2.0
    assert 2.0 <= second <= 3.0


@pytest.mark.parametrize("status", [429, 503])
def test_a_reconnection_refused_for_now_waits_as_long_as_the_api_says(status: int) -> None:
    busy = httpx.Response(
        status, json={"title": "busy", "detail": "come back later"}, headers={"Retry-After": "7"}
    )
    script = Script("retry: 2000\nid: t@0:1\ndata: one\n\n", busy, "id: t@0:2\ndata: two\n\n")
    sleeps: list[float] = []
    notices: list[RetryNotice] = []
    got = events(stream(script, sleeps, on_retry=notices.append), 2)
    assert [m.data for m in got] == ["one", "two"]
    assert sleeps == [2.0, 7.0]  # the server's retry field after the drop, then Retry-After
    assert notices[1].reason == f"the API answered {status}"
    assert script.requests[2].headers["last-event-id"] == "t@0:1"


def test_a_refusal_on_reconnection_ends_the_subscription() -> None:
    gone = httpx.Response(410, json={"title": "Gone", "detail": "too old"})
    script = Script("id: t@0:1\ndata: one\n\n", gone)
    subscription = stream(script)
    with subscription:
        assert next(subscription).data == "one"
        with pytest.raises(Exception, match="too old") as caught:
            next(subscription)
    assert type(caught.value).__name__ == "Gone"


def test_subscribe_hands_out_typed_events_and_passes_over_error_messages() -> None:
    meeting = next(
        line
        for line in SEEDS.read_text(encoding="utf-8").splitlines()
        if '"diplomacy.meeting.held"' in line
    )
    script = Script(
        f"id: t@0:1\ndata: {meeting}\n\n"
        'event: error\ndata: {"error": "read models unavailable"}\n\n',
        f"id: t@0:2\ndata: {meeting}\n\n",
    )
    got = events(client(script).subscribe(countries=["CHN"]), 2)
    assert [type(e) for e in got] == [StreamedEvent, StreamedEvent]
    assert [e.position for e in got] == ["t@0:1", "t@0:2"]
    assert all(isinstance(e.event, MeetingHeld) for e in got)
    assert got[0].event.id == json.loads(meeting)["id"]


def test_subscribe_refuses_a_message_that_is_no_event() -> None:
    script = Script('id: t@0:1\ndata: {"type": "diplomacy.nothing.known"}\n\n')
    with pytest.raises(UnexpectedAnswer, match=r"a message that is not an event \(id t@0:1"):
        events(client(script).subscribe(), 1)


def test_stopping_early_closes_the_connection() -> None:
    closed: list[bool] = []

    class Body(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"id: t@0:1\ndata: one\n\n"
            yield b"id: t@0:2\ndata: two\n\n"

        def close(self) -> None:
            closed.append(True)

    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Body(), headers={"content-type": "text/event-stream"})

    assert [m.data for m in events(stream(answer), 1)] == ["one"]
    assert closed == [True]


async def test_the_async_client_resumes_after_a_drop_too() -> None:
    script = Script(
        "id: t@0:1\ndata: one\n\nid: t@0:2\ndata: tw",  # cut
        "id: t@0:2\ndata: two\n\n",
    )
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    got: list[SseMessage] = []
    async with (
        AsyncClient(
            URL, api_key="key", transport=httpx.MockTransport(script), sleep=sleep
        ) as chancery,
        chancery.stream() as subscription,
    ):
        async for message in subscription:
            got.append(message)
            if len(got) == 2:
                break
        assert subscription.position == "t@0:2"
    assert [m.data for m in got] == ["one", "two"]
    assert script.requests[1].headers["last-event-id"] == "t@0:1"
    (slept,) = sleeps
    assert 1.0 <= slept <= 2.0
