"""Following /v1/stream: the SSE format, and resuming with Last-Event-ID after a drop."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from services.cli.errors import CliError, ServiceDown
from services.cli.stream import SseDecoder, SseMessage, StreamFollower

pytestmark = pytest.mark.unit

URL = "http://api.test"


def feed(decoder: SseDecoder, text: str) -> list[SseMessage]:
    out = []
    for line in text.split("\n"):
        message = decoder.feed(line)
        if message is not None:
            out.append(message)
    return out


def test_the_decoder_reads_fields_comments_and_multi_line_data() -> None:
    decoder = SseDecoder()
    messages = feed(
        decoder,
        ': hello\nretry: 2500\nid: t@0:1\nevent: update\ndata: {"a":\ndata: 1}\n\n'
        "data:no space\n\n",
    )
    assert messages == [
        SseMessage(event="update", data='{"a":\n1}', id="t@0:1"),
        SseMessage(event="message", data="no space", id="t@0:1"),
    ]
    assert decoder.retry_ms == 2500


def test_an_id_counts_only_once_its_event_is_complete() -> None:
    decoder = SseDecoder()
    feed(decoder, "id: t@0:1\ndata: one\n\nid: t@0:2\ndata: tw")
    assert decoder.last_id == "t@0:1"  # the second event never completed


def test_a_ping_with_an_id_moves_the_position_without_a_message() -> None:
    decoder = SseDecoder()
    assert feed(decoder, ": ping\nid: t@0:9\n\n") == []
    assert decoder.last_id == "t@0:9"


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
    assert sleeps == [1.0]
    assert notices == [
        "stream interrupted (the API closed the stream); reconnecting from t@0:2 in 1 s"
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
        return httpx.Response(200, content=body.encode())

    sleeps: list[float] = []
    follower = StreamFollower(URL, "key", transport=httpx.MockTransport(flaky), sleep=sleeps.append)
    assert [m.data for m in events(follower, 2)] == ["one", "two"]
    assert sleeps == [1.0, 2.0]
