"""`AsyncClient`: Chancery from asyncio code (httpx.AsyncClient). The logic is core.py's;
this module performs its effects and gives every call a method, as sync.py does for `Client`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, cast

import httpx
from httpx_sse import EventSource, ServerSentEvent

from chancery.answers import (
    CountryRelationsBody,
    Direction,
    ItineraryBody,
    Order,
    PersonBody,
    RelationBody,
    RelationItem,
    RelationListBody,
    RelationSort,
    ScoreSeriesBody,
    VisitBody,
    VisitsBody,
)
from chancery.domain.scores import Bucket

from . import calls, core
from .answers import (
    Accepted,
    EventsBody,
    LoggedEvent,
    RecordBody,
    RecordItem,
    RetryNotice,
    SseMessage,
    StreamedEvent,
    TimelineBody,
)
from .config import configure

T = TypeVar("T")
X = TypeVar("X")
P = TypeVar("P", bound=core.Page[Any])
I = TypeVar("I")  # noqa: E741 - the item type of a page


class _Streams:
    """The event streams a plan holds open, closed when it ends whichever way."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[httpx.Response, AsyncGenerator[ServerSentEvent, None]]] = {}

    def add(self, response: httpx.Response) -> None:
        self._open[id(response)] = (response, EventSource(response).aiter_sse())

    async def next(self, response: httpx.Response) -> ServerSentEvent | None:
        return await anext(self._open[id(response)][1], None)

    async def close(self, response: httpx.Response) -> None:
        _, messages = self._open.pop(id(response), (response, None))
        if messages is not None:
            await messages.aclose()
        await response.aclose()

    async def close_all(self) -> None:
        for response, _ in list(self._open.values()):
            await self.close(response)


class AsyncClient:
    """Chancery over HTTP: post events to ingest, read the API, follow its stream.

    `api_key` (or a JWT as `token`) is sent as `Authorization: Bearer`. A request that meets
    a failure worth another try (429, 502, 503, 504, a lost connection) is sent again after
    the `Retry-After` the service asked for, else with backoff, for up to `retry_for_s`
    seconds of waiting in all; then the last failure is raised (see `chancery.client.errors`).
    `on_retry` hears of each wait (default: a warning on the `chancery.client` logger).
    `transport` and `sleep` are for tests (an `httpx.MockTransport`, a recording sleep).

    Use it as an async context manager, or `aclose()` it: it holds a connection pool.
    """

    def __init__(
        self,
        api_url: str | None = None,
        ingest_url: str | None = None,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
        retry_for_s: float = 30.0,
        position_wait_s: float = 60.0,
        on_retry: Callable[[RetryNotice], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._config = configure(
            api_url=api_url,
            ingest_url=ingest_url,
            api_key=api_key,
            token=token,
            timeout_s=timeout_s,
            retry_for_s=retry_for_s,
            position_wait_s=position_wait_s,
            on_retry=on_retry,
        )
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._sleep = sleep
        self._causal: core.Causal | None = None

    @property
    def api_url(self) -> str:
        return self._config.api.url

    @property
    def ingest_url(self) -> str:
        return self._config.ingest.url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def session(self, position: str | None = None) -> AsyncSession:
        """A causally consistent session: each read reflects at least every write it made
        and every position its reads reflected (`position` starts it further on)."""
        return AsyncSession(self, position)

    async def ping(
        self, service: Literal["ingest", "API"] = "API", *, timeout_s: float = 5.0
    ) -> None:
        """Raise `ServiceUnreachable` unless the service answers at all (tried once)."""
        await self._run(core.ping(self._config, service, timeout_s=timeout_s))

    # --- writing -----------------------------------------------------------------------------

    async def post(self, events: calls.EventLike | Sequence[calls.EventLike]) -> Accepted:
        """Post one event, or a batch (a sequence, accepted or refused as a whole).

        Returns each event's position and one covering them all. Posting the same events
        again is safe: ingest answers the same and appends nothing.
        """
        accepted = await self._run(core.perform(self._config, calls.post(events)))
        if self._causal is not None:
            self._causal.observe(accepted.position)
        return accepted

    # --- reading -----------------------------------------------------------------------------

    async def relation(
        self,
        a: str,
        b: str,
        *,
        as_of: date | None = None,
        known_at: datetime | None = None,
        min_position: str | None = None,
    ) -> RelationBody:
        """The relation between two actors, now, as of a day, or as known at a time."""
        call = calls.relation(a, b, as_of=as_of, known_at=known_at)
        return await self._read(call, min_position)

    def relations(
        self,
        country: str,
        *,
        sort: RelationSort = "score",
        order: Order = "desc",
        limit: int | None = None,
        min_position: str | None = None,
    ) -> AsyncPages[RelationListBody, RelationItem]:
        """Every relation of a country, page after page (`limit` a page)."""
        return self._pages(
            calls.relations_pages(country, sort=sort, order=order, limit=limit), min_position
        )

    async def country_relations(
        self,
        country: str,
        *,
        as_of: date | None = None,
        known_at: datetime | None = None,
        sort: RelationSort = "score",
        order: Order = "desc",
        min_position: str | None = None,
    ) -> CountryRelationsBody:
        """Every partner of a country on a day, as known at a time, in one answer."""
        call = calls.country_relations(
            country, as_of=as_of, known_at=known_at, sort=sort, order=order
        )
        return await self._read(call, min_position)

    async def scores(
        self,
        a: str,
        b: str,
        *,
        bucket: Bucket = "week",
        start: date | None = None,
        end: date | None = None,
        as_of: date | None = None,
        known_at: datetime | None = None,
        min_position: str | None = None,
    ) -> ScoreSeriesBody:
        """A pair's score by week or month over a range."""
        call = calls.scores(
            a, b, bucket=bucket, start=start, end=end, as_of=as_of, known_at=known_at
        )
        return await self._read(call, min_position)

    def record(
        self,
        a: str,
        b: str,
        *,
        as_of: date | None = None,
        known_at: datetime | None = None,
        order: Order = "desc",
        limit: int | None = None,
        min_position: str | None = None,
    ) -> AsyncPages[RecordBody, RecordItem]:
        """A pair's events as known at a time, retracted ones marked, page after page."""
        listing = calls.record_pages(a, b, as_of=as_of, known_at=known_at, order=order, limit=limit)
        return self._pages(listing, min_position)

    def timeline(
        self,
        *,
        pair: tuple[str, str] | None = None,
        country: str | None = None,
        types: Iterable[str] = (),
        start: date | None = None,
        end: date | None = None,
        order: Order = "asc",
        limit: int | None = None,
        min_position: str | None = None,
    ) -> AsyncPages[TimelineBody, LoggedEvent]:
        """The events of a pair or of a country in the order they occurred, page after page."""
        listing = calls.timeline_pages(
            pair, country, types=types, start=start, end=end, order=order, limit=limit
        )
        return self._pages(listing, min_position)

    async def itinerary(
        self,
        person_id: str,
        *,
        as_of: date | None = None,
        known_at: datetime | None = None,
        min_position: str | None = None,
    ) -> ItineraryBody:
        """A person's trips and their legs, with their status."""
        return await self._read(
            calls.itinerary(person_id, as_of=as_of, known_at=known_at), min_position
        )

    def visits(
        self,
        country: str,
        *,
        start: date | None = None,
        end: date | None = None,
        direction: Direction | None = None,
        statuses: Iterable[str] = (),
        limit: int | None = None,
        min_position: str | None = None,
    ) -> AsyncPages[VisitsBody, VisitBody]:
        """Visits to or from a country, page after page."""
        listing = calls.visits_pages(
            country, start=start, end=end, direction=direction, statuses=statuses, limit=limit
        )
        return self._pages(listing, min_position)

    async def person(self, person_id: str, *, min_position: str | None = None) -> PersonBody:
        """A person: appointments and trips (`NotFound` when no event names them)."""
        return await self._read(calls.person(person_id), min_position)

    async def event(
        self, event_id: str, *, source: str | None = None, min_position: str | None = None
    ) -> EventsBody:
        """Every stored event with this id (one per source), where each sits in the log."""
        return await self._read(calls.event(event_id, source=source), min_position)

    # --- the stream --------------------------------------------------------------------------

    def subscribe(
        self,
        *,
        types: Iterable[str] = (),
        countries: Iterable[str] = (),
        after: str | None = None,
    ) -> AsyncSubscription[StreamedEvent]:
        """Events as the projector applies them, resumed by itself after every drop.

        Without `after`, from now on; with it (a position from an earlier subscription),
        right after it. Iterate it; `position` is where to resume a later one.
        """
        return self._subscription(types, countries, after, calls.typed_events(self._config.api))

    def stream(
        self,
        *,
        types: Iterable[str] = (),
        countries: Iterable[str] = (),
        after: str | None = None,
    ) -> AsyncSubscription[SseMessage]:
        """`subscribe`, as the stream's messages themselves (event name, data, id)."""
        return self._subscription(types, countries, after, lambda message: message)

    # --- how calls run -----------------------------------------------------------------------

    async def _read(self, call: core.Call[core.P], min_position: str | None) -> core.P:
        return await self._run(
            core.read(self._config, self._causal, call, min_position=min_position)
        )

    def _pages(self, listing: calls.Listing[P], min_position: str | None) -> AsyncPages[P, Any]:
        return AsyncPages(
            self, lambda: core.pages(self._config, self._causal, listing, min_position=min_position)
        )

    def _subscription(
        self,
        types: Iterable[str],
        countries: Iterable[str],
        after: str | None,
        convert: Callable[[SseMessage], X | None],
    ) -> AsyncSubscription[X]:
        state = core.StreamState(last_id=after)
        params = calls.stream_params(types, countries)
        plan = core.follow(self._config, state, params, convert)
        return AsyncSubscription(state, self._drive(core.Stepper(plan)))

    async def _run(self, plan: core.Plan[T]) -> T:
        stepper = core.Stepper(plan)
        async for item in self._drive(stepper):
            raise AssertionError(f"a call emitted {item!r}")
        return cast(T, stepper.result)  # set once the plan returned

    async def _drive(self, stepper: core.Stepper[Any]) -> AsyncGenerator[Any, None]:
        streams = _Streams()
        try:
            while (effect := stepper.next_effect()) is not None:
                if isinstance(effect, core.Emit):
                    yield effect.item
                    continue
                try:
                    stepper.resume(await self._perform(effect, streams))
                except httpx.TransportError as exc:
                    stepper.fail(exc)
        finally:
            stepper.close()
            await streams.close_all()

    async def _perform(self, effect: core.Effect, streams: _Streams) -> object:
        if isinstance(effect, core.Send):
            response = await self._http.send(effect.request, stream=effect.stream)
            if effect.stream:
                streams.add(response)
            return response
        if isinstance(effect, core.Sleep):
            await self._sleep(effect.seconds)
        elif isinstance(effect, core.NextMessage):
            return await streams.next(effect.response)
        elif isinstance(effect, core.Drain):
            try:
                await effect.response.aread()
            finally:
                await streams.close(effect.response)
        elif isinstance(effect, core.Close):
            await streams.close(effect.response)
        return None


class AsyncSession(AsyncClient):
    """An `AsyncClient` that carries its position into every read (see `session`).

    It shares its client's connections: closing it, or leaving its `with` block, closes
    nothing.
    """

    def __init__(self, client: AsyncClient, position: str | None = None) -> None:
        self._config = client._config
        self._http = client._http
        self._sleep = client._sleep
        self._causal = core.Causal(position)

    @property
    def position(self) -> str | None:
        """What every read of this session reflects at least (None before any)."""
        assert self._causal is not None
        return self._causal.position

    async def aclose(self) -> None:
        """Nothing: the connections are the client's."""

    async def __aenter__(self) -> AsyncSession:
        return self


class AsyncPages(Generic[P, I]):
    """A listing: `async for` gives every item of every page, following the cursor; its
    `pages()` gives the pages themselves (with their position and cursor)."""

    def __init__(self, client: AsyncClient, plan: Callable[[], core.Plan[None]]) -> None:
        self._client = client
        self._plan = plan

    def pages(self) -> AsyncGenerator[P, None]:
        return self._client._drive(core.Stepper(self._plan()))

    async def __aiter__(self) -> AsyncIterator[I]:
        pages = self.pages()
        try:
            async for page in pages:
                for item in page.items:
                    yield item
        finally:
            await pages.aclose()


class AsyncSubscription(Generic[X]):
    """An open subscription: `async for` over it; it reconnects and resumes by itself.
    `position` is the last position it reached (pings included): pass it as `after` to
    resume later.

    The connection opens when the `async with` block is entered (or at the first item):
    without `after`, the subscription starts with what is applied from then on. `aclose()`
    it (or leave its `async with` block) to end the connection."""

    def __init__(self, state: core.StreamState, items: AsyncGenerator[object, None]) -> None:
        self._state = state
        self._items = items
        self._open = False

    @property
    def position(self) -> str | None:
        return self._state.last_id

    async def open(self) -> AsyncSubscription[X]:
        """Connect now, if not connected yet (waits until the stream's start is known)."""
        if not self._open:
            self._open = True
            first = await anext(self._items)
            assert first is core.STARTED, first
        return self

    def __aiter__(self) -> AsyncIterator[X]:
        return self

    async def __anext__(self) -> X:
        await self.open()
        return cast(X, await anext(self._items))

    async def aclose(self) -> None:
        await self._items.aclose()

    async def __aenter__(self) -> AsyncSubscription[X]:
        return await self.open()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
