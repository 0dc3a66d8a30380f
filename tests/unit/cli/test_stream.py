"""Following /v1/stream: the SSE format, and resuming with Last-Event-ID after a drop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.cli.errors import CliError, ServiceDown
from services.cli.stream import SseMessage, StreamFollower

pytestmark = pytest.mark.unit

URL = "http://api.test"


class Script:
    """Answers each GET /v1/stream with the next body; records the requests."""

    def __init__(self, *bodies: str) -> None:
        self.bodies = list(bodies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = self.bodies.pop(0) if self.bodies else ""
        return httpx.Response(
            200, content=body.encode(), headers={"content-type": "text/event-stream"}
        )


def events(follower: StreamFollower, count: int) -> list[SseMessage]:
    out: list[SseMessage] = []
    stream: Iterator[SseMessage] = follower.follow()
    for message in stream:
        out.append(message)
        if len(out) == count:
            break
    return out


def follower(script: Script, sleeps: list[float] | None = None, **options: Any) -> StreamFollower:
    return StreamFollower(
        URL,
        "key",
        transport=httpx.MockTransport(script),
        sleep=(sleeps if sleeps is not None else []).append,
        **options,
    )


def test_fields_comments_and_multi_line_data_are_read() -> None:
    script = Script(
        ': hello\nretry: 2500\nid: t@0:1\nevent: update\ndata: {"a":\ndata: 1}\n\n'
        "data:no space\n\n",
    )
    assert events(follower(script), 2) == [
        SseMessage(event="update", data='{"a":\n1}', id="t@0:1"),
        SseMessage(event="message", data="no space", id="t@0:1"),
    ]


def test_an_id_counts_only_once_its_event_is_complete() -> None:
    script = Script("id: t@0:1\ndata: one\n\nid: t@0:2\ndata: tw", "id: t@0:2\ndata: two\n\n")
    got = events(follower(script), 2)
    assert [m.data for m in got] == ["one", "two"]
    assert script.requests[1].headers["last-event-id"] == "t@0:1"  # the second never completed


def test_a_ping_with_an_id_moves_the_position_without_a_message() -> None:
    script = Script(": ping\nid: t@0:9\n\n", "id: t@0:10\ndata: ten\n\n")
    stream = follower(script)
    assert [m.data for m in events(stream, 1)] == ["ten"]
    assert script.requests[1].headers["last-event-id"] == "t@0:9"


def test_the_servers_retry_delay_is_honoured() -> None:
    sleeps: list[float] = []
    script = Script("retry: 2500\nid: t@0:1\ndata: one\n\n", "id: t@0:2\ndata: two\n\n")
    assert [m.data for m in events(follower(script, sleeps), 2)] == ["one", "two"]
    assert sleeps == [2.5]


def test_an_answer_that_is_no_event_stream_is_reported() -> None:
    def page(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>", headers={"content-type": "text/html"})

    stream = StreamFollower(URL, "key", transport=httpx.MockTransport(page))
    with pytest.raises(CliError, match=r"answered /v1/stream with text/html, not an event str"):
        events(stream, 1)


def test_a_dropped_stream_resumes_after_the_last_complete_event() -> None:
    script = Script(
        "id: t@0:1\ndata: one\n\nid: t@0:2\ndata: two\n\nid: t@0:3\ndata: thr",  # cut
        "id: t@0:3\ndata: three\n\n",
    )
    notices: list[str] = []
    sleeps: list[float] = []
    follower = StreamFollower(
        URL,
        "key",
        params=[("type", "diplomacy.meeting.held"), ("country", "CHN")],
        transport=httpx.MockTransport(script),
        sleep=sleeps.append,
        on_notice=notices.append,
    )
    got = events(follower, 3)
    assert [m.data for m in got] == ["one", "two", "three"]  # no gap, no duplicate
    first, second = script.requests
    assert "last-event-id" not in first.headers
    assert second.headers["last-event-id"] == "t@0:2"
    assert first.url.params.get_list("type") == ["diplomacy.meeting.held"]
    assert first.url.params.get_list("country") == ["CHN"]
    assert first.headers["authorization"] == "Bearer key"
    (slept,) = sleeps
    assert 1.0 <= slept <= 2.0  # backoff from 1 s, plus up to 1 s of jitter
    assert notices == [
        f"stream interrupted (the API closed the stream); reconnecting from t@0:2 in {slept:.3g} s"
    ]


def test_resuming_from_a_given_position_sends_it_at_once() -> None:
    script = Script("id: t@0:8\ndata: eight\n\n")
    follower = StreamFollower(
        URL, "key", last_event_id="t@0:7", transport=httpx.MockTransport(script)
    )
    assert [m.data for m in events(follower, 1)] == ["eight"]
    assert script.requests[0].headers["last-event-id"] == "t@0:7"


def test_an_api_that_is_down_at_the_start_is_reported() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    follower = StreamFollower(URL, "key", transport=httpx.MockTransport(refuse))
    with pytest.raises(ServiceDown, match=r"API is not reachable at http://api\.test: connection"):
        events(follower, 1)


def test_a_refused_key_is_reported() -> None:
    def refuse(_: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"title": "Unauthorized", "detail": "unknown key"})

    follower = StreamFollower(URL, "key", transport=httpx.MockTransport(refuse))
    with pytest.raises(CliError, match=r"API at http://api.test refused the API key \(401\)"):
        events(follower, 1)


def test_after_a_first_success_a_lost_connection_is_retried() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 2:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        body = "id: t@0:1\ndata: one\n\n" if calls["n"] == 1 else "id: t@0:2\ndata: two\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    sleeps: list[float] = []
    follower = StreamFollower(URL, "key", transport=httpx.MockTransport(flaky), sleep=sleeps.append)
    assert [m.data for m in events(follower, 2)] == ["one", "two"]
    first, second = sleeps  # the drop, then the refused connection: backoff doubles
    assert 1.0 <= first <= 2.0
    assert 2.0 <= second <= 3.0
