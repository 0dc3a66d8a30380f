"""Following the API's live stream (`GET /v1/stream`, Server-Sent Events), resuming on loss.

`SseDecoder` reads the text/event-stream format line by line (WHATWG HTML, "Server-sent
events"): `id`, `event`, `data` and `retry` fields, comments, and dispatch on a blank line.
The last event id is committed only when its event is dispatched, so a connection lost in
the middle of an event resumes before that event, never after it.

`StreamFollower.follow()` yields events and, when the connection drops, reconnects with
`Last-Event-ID` set to the last id it dispatched: the API resumes from that position, so
nothing is missed and nothing is shown twice. The first connection failing is reported
(`ServiceDown`, `CliError`); later failures are announced and retried with backoff (or
after the server's `retry` delay) until the caller stops iterating.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import httpx

from .errors import ServiceDown, transport_reason
from .remote import answer_of

STREAM_PATH = "/v1/stream"
RECONNECT_STATUSES = frozenset({502, 503, 504})
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class SseMessage:
    event: str
    data: str
    id: str | None


class SseDecoder:
    """Feed it lines (without their line ending); it returns each message as it completes."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._id_buffer: str | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SseMessage | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseMessage | None:
        if self._id_buffer is not None:
            self.last_id = self._id_buffer
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseMessage(event=event or "message", data="\n".join(data), id=self.last_id)


class StreamFollower:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        last_event_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_notice: Callable[[str], None] | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url
        self.last_id = last_event_id
        self._params = httpx.QueryParams(list(params))
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"},
            # No read timeout: the API sends keep-alive pings, and a quiet stream is not dead.
            timeout=httpx.Timeout(connect_timeout_s, read=None),
            transport=transport,
        )
        self._sleep = sleep
        self._notice = on_notice or (lambda _: None)
        self.reconnects = 0

    def close(self) -> None:
        self._client.close()

    def follow(self) -> Generator[SseMessage, None, None]:
        connected = False
        backoff = FIRST_BACKOFF_S
        retry_ms: int | None = None
        while True:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                with self._client.stream(
                    "GET", STREAM_PATH, params=self._params, headers=headers
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        if not connected or response.status_code not in RECONNECT_STATUSES:
                            answer_of("API", self.base_url, response)
                        why = f"the API answered {response.status_code}"
                    else:
                        connected = True
                        backoff = FIRST_BACKOFF_S
                        decoder = SseDecoder()
                        for line in response.iter_lines():
                            message = decoder.feed(line)
                            retry_ms = decoder.retry_ms or retry_ms
                            if decoder.last_id is not None:
                                self.last_id = decoder.last_id
                            if message is not None:
                                yield message
                        why = "the API closed the stream"
            except httpx.TransportError as exc:
                if not connected:
                    raise ServiceDown("API", self.base_url, transport_reason(exc)) from None
                why = transport_reason(exc)
            delay = retry_ms / 1000 if retry_ms is not None else backoff
            resume = f"from {self.last_id}" if self.last_id else "from the start"
            self._notice(f"stream interrupted ({why}); reconnecting {resume} in {delay:g} s")
            self._sleep(delay)
            self.reconnects += 1
            backoff = min(backoff * 2, MAX_BACKOFF_S)
