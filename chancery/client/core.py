"""The client's logic, once, for both the sync and the async client: plans of effects.

Every call (post events, read a relation, walk a timeline's pages, follow the stream) is a
*plan*: a generator that yields effects (`Send` this request, `Sleep` so long, give me the
`NextMessage` of this event stream, `Emit` this item to the caller...) and is resumed with
their outcome, or has the transport's failure thrown in where it yielded. It does no I/O
itself. `Client` (sync.py) performs the effects with `httpx.Client` and `time.sleep`,
`AsyncClient` (aio.py) with `httpx.AsyncClient` and `asyncio.sleep`; everything else (what
to ask, what an answer means, what to retry and how long to wait, where a stream resumes,
what a session carries into its next read) is here, and the two clients share it. The
shape is httpx's own split of a sans-I/O core and two transports, at the level of a call.

Retries are paced by tenacity, driven step by step (`BaseRetrying.iter`, the same step
tenacity's own sync and async loops are made of), so its waits become `Sleep` effects:
- a request: 429, 502, 503 and 504 and transport failures are tried again, after the
  `Retry-After` the answer carries, else with exponential backoff and jitter, until waiting
  longer would pass the client's `retry_for_s`; a read with `min_position` answered 504 is
  asked again for up to `position_wait_s` (the API already waited on each). Posting again is
  safe: ingest is idempotent on (source, id);
- the stream: the first connection as a request; once open, every drop is followed by a new
  connection with `Last-Event-ID` set to the last id received, after the server's `retry`
  delay (else backoff), for as long as the caller iterates.

Adding an endpoint (webhook subscriptions, say) is a `Call` builder in calls.py and a
one-line method on each client.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import httpx
from httpx_sse import ServerSentEvent
from tenacity import DoAttempt, DoSleep, RetryCallState, Retrying, retry_if_exception_type
from tenacity.stop import stop_base, stop_never

from chancery.positions import InvalidPositionError, Position

from .answers import RetryNotice, SseMessage
from .errors import (
    ChanceryError,
    ProblemError,
    ServiceUnreachable,
    UnexpectedAnswer,
    problem_of,
    transport_reason,
)
from .retrying import ServerDelayOrBackoff, TryAgainLater, failure_of

T = TypeVar("T")
X = TypeVar("X")
ItemT_co = TypeVar("ItemT_co", covariant=True)

EVENT_STREAM = "text/event-stream"
STREAM_PATH = "/v1/stream"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""Worth another try: too many streams open, a proxy's failure, unavailable, not yet applied."""
REQUEST_BACKOFF = (0.5, 30.0)
"""First and longest wait between attempts of a request, when the server names none."""
STREAM_BACKOFF = (1.0, 30.0)
"""The same between reconnections of the stream."""


# --- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send `request`; resume with the response (its body read, unless `stream`)."""

    request: httpx.Request
    stream: bool = False


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class NextMessage:
    """Resume with the next message of an open event stream, or None when it ended."""

    response: httpx.Response


@dataclass(frozen=True)
class Drain:
    """Read the rest of a streamed response's body, then close it."""

    response: httpx.Response


@dataclass(frozen=True)
class Close:
    response: httpx.Response


@dataclass(frozen=True)
class Emit(Generic[T]):
    """Hand `item` to the caller iterating the plan; resume when it asks for the next."""

    item: T


Effect = Send | Sleep | NextMessage | Drain | Close | Emit[Any]
Plan = Generator[Effect, Any, T]
"""A call: yields effects, is resumed with their outcome, returns the call's result."""


class Stepper(Generic[T]):
    """Runs a plan one effect at a time for a client that performs the effects."""

    def __init__(self, plan: Plan[T]) -> None:
        self._plan = plan
        self._value: object = None
        self._error: BaseException | None = None
        self.result: T | None = None

    def next_effect(self) -> Effect | None:
        """The plan's next effect, or None once it returned (its value is then `result`)."""
        try:
            if self._error is not None:
                error, self._error = self._error, None
                effect = self._plan.throw(error)
            else:
                value, self._value = self._value, None
                effect = self._plan.send(value)
        except StopIteration as done:
            self.result = cast(T, done.value)
            return None
        return effect

    def resume(self, value: object) -> None:
        self._value = value

    def fail(self, error: BaseException) -> None:
        self._error = error

    def close(self) -> None:
        self._plan.close()


# --- configuration and sessions --------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One of the two services: its name in messages, and its base URL."""

    name: Literal["ingest", "API"]
    url: str


@dataclass(frozen=True)
class Config:
    api: Endpoint
    ingest: Endpoint
    headers: Mapping[str, str]
    timeout_s: float
    connect_timeout_s: float
    retry_for_s: float
    """How long, in all, to wait between attempts of one request before giving up."""
    position_wait_s: float
    """How long to keep asking a read whose `min_position` is not applied yet (504)."""
    on_retry: Callable[[RetryNotice], None]

    def endpoint(self, service: Literal["ingest", "API"]) -> Endpoint:
        return self.api if service == "API" else self.ingest

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)


def base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


class Positioned(Protocol):
    @property
    def position(self) -> str: ...


class Page(Positioned, Protocol[ItemT_co]):
    @property
    def items(self) -> Sequence[ItemT_co]: ...

    @property
    def next_cursor(self) -> str | None: ...


class Causal:
    """A session's position: the merge of every position it wrote at and every position its
    reads reflected. Each read waits for it (`min_position`), so a session reads its own
    writes, and never reads older than it already did, whichever API process answers."""

    def __init__(self, position: str | None = None) -> None:
        self._position: Position | None = None
        self.observe(position)

    @property
    def position(self) -> str | None:
        return self._position.token() if self._position is not None else None

    def observe(self, token: str | None) -> None:
        if not token or token.endswith("@"):  # nothing applied anywhere yet: nothing to carry
            return
        try:
            seen = Position.parse(token)
        except InvalidPositionError as exc:
            raise ValueError(f"not a position token: {token!r} ({exc})") from None
        self._position = seen if self._position is None else self._position.merge(seen)

    def wanted(self, explicit: str | None) -> str | None:
        """What a read must reflect: the session's position and the caller's, merged."""
        if explicit is None:
            return self.position
        merged = Causal(self.position)
        merged.observe(explicit)
        return merged.position


# --- calls -----------------------------------------------------------------------------------


Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    service: Literal["ingest", "API"]
    method: Literal["GET", "POST"]
    path: str
    read: Callable[[Endpoint, httpx.Response], T]
    params: Params = ()
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    expect: int = 200


class _Retry(TryAgainLater):
    """A failed attempt worth another, and how long it may be retried in all."""

    def __init__(self, failure: ChanceryError, *, budget_s: float) -> None:
        after = failure.retry_after_s if isinstance(failure, ProblemError) else None
        super().__init__(failure.reason, after_s=after)
        self.failure = failure
        self.budget_s = budget_s


class _WithinBudget(stop_base):
    """Stop when the next wait would bring the time spent waiting past the failure's budget
    (it counts the waits themselves, not the clock, so it holds whatever `sleep` is used)."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        failure = failure_of(retry_state)
        budget = failure.budget_s if isinstance(failure, _Retry) else 0.0
        return retry_state.idle_for + retry_state.upcoming_sleep > budget


def _give_up(retry_state: RetryCallState) -> None:
    failure = failure_of(retry_state)
    assert isinstance(failure, _Retry)
    failure.failure.waited_s = retry_state.idle_for
    raise failure.failure from None


def retried(
    attempt: Callable[[], Plan[T]],
    *,
    retry_on: type[TryAgainLater],
    stop: stop_base,
    backoff: tuple[float, float],
    before_sleep: Callable[[RetryCallState], None],
) -> Plan[T]:
    """Run `attempt` until it returns, trying again while it raises `retry_on`, as tenacity's
    strategies say; its waits are yielded as `Sleep`."""
    first, longest = backoff
    retrying = Retrying(
        retry=retry_if_exception_type(retry_on),
        wait=ServerDelayOrBackoff(first_s=first, longest_s=longest),
        stop=stop,
        before_sleep=before_sleep,
        retry_error_callback=_give_up,
    )
    retrying.begin()
    state = RetryCallState(retrying, fn=None, args=(), kwargs={})
    while True:
        action = retrying.iter(state)
        if isinstance(action, DoAttempt):
            try:
                result = yield from attempt()
            except Exception:  # noqa: BLE001 - the outcome tenacity decides on (re-raised if final)
                state.set_exception(cast(Any, sys.exc_info()))
            else:
                state.set_result(result)
        elif isinstance(action, DoSleep):
            state.prepare_for_next_attempt()
            yield Sleep(float(action))
        else:
            return cast(T, action)


def _announce(config: Config, endpoint: Endpoint) -> Callable[[RetryCallState], None]:
    def announce(retry_state: RetryCallState) -> None:
        failure = failure_of(retry_state)
        reason = failure.reason if isinstance(failure, TryAgainLater) else repr(failure)
        config.on_retry(
            RetryNotice(
                service=endpoint.name,
                url=endpoint.url,
                reason=reason,
                delay_s=retry_state.upcoming_sleep,
                attempt=retry_state.attempt_number,
            )
        )

    return announce


def build(
    config: Config,
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    params: Params = (),
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: httpx.Timeout | None = None,
) -> httpx.Request:
    return httpx.Request(
        method,
        endpoint.url + path,
        params=list(params),
        headers={**config.headers, **(headers or {})},
        content=content,
        extensions={"timeout": (timeout or config.timeout()).as_dict()},
    )


def perform(config: Config, call: Call[T], *, min_position: str | None = None) -> Plan[T]:
    """One call, with the retries it deserves; raises the typed error it ends in."""
    endpoint = config.endpoint(call.service)
    params = call.params + ((("min_position", min_position),) if min_position else ())
    request = build(
        config,
        endpoint,
        call.method,
        call.path,
        params=params,
        headers=call.headers,
        content=call.content,
    )
    position_budget = max(config.position_wait_s, config.retry_for_s)

    def attempt() -> Plan[T]:
        try:
            response: httpx.Response = yield Send(request)
        except httpx.TransportError as exc:
            unreachable = ServiceUnreachable(
                service=endpoint.name, url=endpoint.url, reason=transport_reason(exc)
            )
            raise _Retry(unreachable, budget_s=config.retry_for_s) from None
        if response.status_code == call.expect:
            return call.read(endpoint, response)
        error = problem_of(endpoint.name, endpoint.url, response)
        if response.status_code == 504 and min_position:
            raise _Retry(error, budget_s=position_budget)
        if response.status_code in RETRY_STATUSES:
            raise _Retry(error, budget_s=config.retry_for_s)
        raise error

    return (
        yield from retried(
            attempt,
            retry_on=_Retry,
            stop=_WithinBudget(),
            backoff=REQUEST_BACKOFF,
            before_sleep=_announce(config, endpoint),
        )
    )


def ping(config: Config, service: Literal["ingest", "API"], *, timeout_s: float) -> Plan[None]:
    """Whether anything answers at the service's URL (its `/healthz`), tried once: any
    answer will do; none raises `ServiceUnreachable`."""
    endpoint = config.endpoint(service)
    request = build(config, endpoint, "GET", "/healthz", timeout=httpx.Timeout(timeout_s))
    try:
        yield Send(request)
    except httpx.TransportError as exc:
        raise ServiceUnreachable(
            service=endpoint.name, url=endpoint.url, reason=transport_reason(exc)
        ) from None


P = TypeVar("P", bound=Positioned)


def read(
    config: Config, causal: Causal | None, call: Call[P], *, min_position: str | None = None
) -> Plan[P]:
    """A read of the API; in a session, at the session's position, which it then moves."""
    wanted = causal.wanted(min_position) if causal is not None else min_position
    answer = yield from perform(config, call, min_position=wanted)
    if causal is not None:
        causal.observe(answer.position)
    return answer


PageT = TypeVar("PageT", bound=Page[Any])


def pages(
    config: Config,
    causal: Causal | None,
    page: Callable[[str | None], Call[PageT]],
    *,
    min_position: str | None = None,
) -> Plan[None]:
    """Every page of a listing, following `next_cursor` until there is none."""
    cursor: str | None = None
    while True:
        answer = yield from read(config, causal, page(cursor), min_position=min_position)
        yield Emit(answer)
        if not answer.next_cursor:
            return
        cursor = answer.next_cursor


# --- the event stream ------------------------------------------------------------------------


class StreamInterrupted(TryAgainLater):
    """The stream ended, or could not be opened again; `after_s` is the server's delay."""


class Started:
    """Emitted once by `follow`, when the stream is open and its start is known: a
    subscription without `after` starts "now", and this is when now was."""


STARTED = Started()


@dataclass
class StreamState:
    """Where a subscription stands: the last SSE id received (pings included), and the
    reconnection delay the server asked for in its latest `retry` field."""

    last_id: str | None = None
    retry_s: float | None = None


def follow(
    config: Config,
    state: StreamState,
    params: Params,
    convert: Callable[[SseMessage], X | None],
) -> Plan[None]:
    """Emit `convert(message)` for each message with data (skipping None), reconnecting
    after every drop with `Last-Event-ID`, until the caller stops iterating. `STARTED` is
    emitted first, once the stream's start is known (the API's first message carries it
    as its id), so that a subscriber can tell when "from now on" began.

    httpx-sse hands out a message, with the last id seen, only once its blank line arrived;
    the id becomes the position then, so a connection lost in the middle of a message
    resumes before that message, never after it. A message without data (the API's first
    message, a keep-alive ping) moves the position and may set the `retry` delay.
    """
    endpoint = config.api
    response = yield from retried(
        lambda: _open_stream(config, state, params, first=True),
        retry_on=_Retry,
        stop=_WithinBudget(),
        backoff=REQUEST_BACKOFF,
        before_sleep=_announce(config, endpoint),
    )
    started = False
    while True:
        try:
            while True:
                if not started and state.last_id is not None:
                    started = True
                    yield Emit(STARTED)
                sse: ServerSentEvent | None = yield NextMessage(response)
                if sse is None:
                    why = "the API closed the stream"
                    break
                if sse.retry:
                    state.retry_s = sse.retry / 1000
                if sse.id:
                    state.last_id = sse.id
                if not started and (state.last_id is not None or sse.data):
                    started = True
                    yield Emit(STARTED)
                if sse.data:
                    item = convert(SseMessage(event=sse.event, data=sse.data, id=sse.id or None))
                    if item is not None:
                        yield Emit(item)
        except httpx.TransportError as exc:
            why = transport_reason(exc)
        yield Close(response)
        response = yield from _reopen_stream(
            config, state, params, StreamInterrupted(why, after_s=state.retry_s)
        )


def _reopen_stream(
    config: Config, state: StreamState, params: Params, drop: StreamInterrupted
) -> Plan[httpx.Response]:
    """A new connection after `drop`, tried until one is open. The drop counts as the first
    failed attempt, so even the first try waits (the server's `retry`, or backoff); each
    drop starts a new count, so a stream that ran for a while starts again from 1 s."""
    attempts = 0

    def attempt() -> Plan[httpx.Response]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise drop
        return (yield from _open_stream(config, state, params, first=False))

    def announce(retry_state: RetryCallState) -> None:
        failure = failure_of(retry_state)
        reason = failure.reason if isinstance(failure, TryAgainLater) else repr(failure)
        config.on_retry(
            RetryNotice(
                service=config.api.name,
                url=config.api.url,
                reason=reason,
                delay_s=retry_state.upcoming_sleep,
                attempt=retry_state.attempt_number,
                reconnecting=True,
                resume_from=state.last_id,
            )
        )

    return (
        yield from retried(
            attempt,
            retry_on=StreamInterrupted,
            stop=stop_never,
            backoff=STREAM_BACKOFF,
            before_sleep=announce,
        )
    )


def _open_stream(
    config: Config, state: StreamState, params: Params, *, first: bool
) -> Plan[httpx.Response]:
    """An open event stream. The first connection fails as any request does (`_Retry`);
    later, what may pass (transport, 429, 502-504) is `StreamInterrupted`."""
    endpoint = config.api
    headers = {"Accept": EVENT_STREAM, "Cache-Control": "no-store"}
    if state.last_id:
        headers["Last-Event-ID"] = state.last_id
    # No read timeout: the API sends keep-alive pings, and a quiet stream is not dead.
    timeout = httpx.Timeout(config.connect_timeout_s, read=None)
    request = build(
        config, endpoint, "GET", STREAM_PATH, params=params, headers=headers, timeout=timeout
    )
    try:
        response: httpx.Response = yield Send(request, stream=True)
        media_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if response.status_code == 200 and media_type == EVENT_STREAM:
            return response
        yield Drain(response)  # the refusal's body, to say why
    except httpx.TransportError as exc:
        reason = transport_reason(exc)
        if first:
            unreachable = ServiceUnreachable(service=endpoint.name, url=endpoint.url, reason=reason)
            raise _Retry(unreachable, budget_s=config.retry_for_s) from None
        raise StreamInterrupted(reason, after_s=state.retry_s) from None
    if response.status_code == 200:
        raise UnexpectedAnswer(
            f"{endpoint.name} at {endpoint.url} answered {STREAM_PATH} with "
            f"{media_type or 'no type'}, not an event stream",
            service=endpoint.name,
            url=endpoint.url,
        )
    error = problem_of(endpoint.name, endpoint.url, response)
    if response.status_code in RETRY_STATUSES:
        if first:
            raise _Retry(error, budget_s=config.retry_for_s)
        raise StreamInterrupted(
            f"the API answered {response.status_code}",
            after_s=error.retry_after_s or state.retry_s,
        )
    raise error
