"""Following the API's live stream (`GET /v1/stream`, Server-Sent Events), resuming on loss.

httpx-sse reads the text/event-stream format (WHATWG HTML, "Server-sent events"). It hands
out an event, with the last id it has seen, only once the event's blank line arrived; the
follower takes that id as its position then, so a connection lost in the middle of an event
resumes before that event, never after it. An event without data (the API's first message,
a keep-alive ping) moves the position and sets the `retry` delay, and is not shown.

`StreamFollower.follow()` yields events and, when the connection drops, reconnects with
`Last-Event-ID` set to the last id it saw: the API resumes from that position, so nothing
is missed and nothing is shown twice. The first connection failing is reported
(`ServiceDown`, `CliError`); later failures are announced and retried (tenacity), after the
server's `retry` delay or else with backoff, until the caller stops iterating.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

import httpx
from httpx_sse import EventSource
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from services.platform.retrying import ServerDelayOrBackoff, TryAgainLater, failure_of

from .errors import CliError, ServiceDown, transport_reason
from .remote import refusal_of

STREAM_PATH = "/v1/stream"
EVENT_STREAM = "text/event-stream"
RECONNECT_STATUSES = frozenset({502, 503, 504})
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class SseMessage:
    event: str
    data: str
    id: str | None


class StreamInterrupted(TryAgainLater):
    """The stream ended, or could not be opened again; `after_s` is the server's `retry`."""


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
            headers={"Authorization": f"Bearer {api_key}", "Accept": EVENT_STREAM},
            # No read timeout: the API sends keep-alive pings, and a quiet stream is not dead.
            timeout=httpx.Timeout(connect_timeout_s, read=None),
            transport=transport,
        )
        self._sleep = sleep
        self._notice = on_notice or (lambda _: None)
        self._retry_s: float | None = None  # the server's latest `retry` field

    def close(self) -> None:
        self._client.close()

    def follow(self) -> Generator[SseMessage, None, None]:
        response = self._connect(first=True)
        while True:
            try:
                yield from self._messages(response)
                why = "the API closed the stream"
            except httpx.TransportError as exc:
                why = transport_reason(exc)
            finally:
                response.close()
            response = self._reconnect(StreamInterrupted(why, after_s=self._retry_s))

    def _messages(self, response: httpx.Response) -> Iterator[SseMessage]:
        for sse in EventSource(response).iter_sse():
            if sse.retry:
                self._retry_s = sse.retry / 1000
            if sse.id:
                self.last_id = sse.id
            if sse.data:
                yield SseMessage(event=sse.event, data=sse.data, id=sse.id or None)

    def _reconnect(self, drop: StreamInterrupted) -> httpx.Response:
        """A new connection after `drop`, tried until one is open. The drop counts as the
        first failed attempt, so even the first try waits (the server's `retry`, or backoff);
        each drop starts a new count, so a stream that ran for a while starts from 1 s."""
        for attempt in Retrying(
            retry=retry_if_exception_type(StreamInterrupted),
            wait=ServerDelayOrBackoff(first_s=FIRST_BACKOFF_S, longest_s=MAX_BACKOFF_S),
            sleep=self._sleep,
            before_sleep=self._announce,
        ):
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    raise drop
                return self._connect(first=False)
        raise AssertionError("a Retrying without a stop ends only by a return or a raise")

    def _connect(self, *, first: bool) -> httpx.Response:
        """An open event stream. A failure of the first connection is the operator's to fix
        and raised as such; later, what may pass (transport, 502-504) is `StreamInterrupted`."""
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        request = self._client.build_request(
            "GET", STREAM_PATH, params=self._params, headers=headers
        )
        try:
            response = self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            if first:
                raise ServiceDown("API", self.base_url, transport_reason(exc)) from None
            raise StreamInterrupted(transport_reason(exc), after_s=self._retry_s) from None
        media_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if response.status_code == 200 and media_type == EVENT_STREAM:
            return response
        response.read()
        response.close()
        if response.status_code == 200:
            raise CliError(
                f"API at {self.base_url} answered {STREAM_PATH} with {media_type or 'no type'}, "
                "not an event stream"
            )
        if not first and response.status_code in RECONNECT_STATUSES:
            raise StreamInterrupted(
                f"the API answered {response.status_code}", after_s=self._retry_s
            )
        raise refusal_of("API", self.base_url, response)

    def _announce(self, retry_state: RetryCallState) -> None:
        failure = failure_of(retry_state)
        why = failure.reason if isinstance(failure, StreamInterrupted) else repr(failure)
        resume = f"from {self.last_id}" if self.last_id else "from the start"
        delay = retry_state.upcoming_sleep
        self._notice(f"stream interrupted ({why}); reconnecting {resume} in {delay:.3g} s")
