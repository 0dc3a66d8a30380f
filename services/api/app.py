"""The composition root of the API: the only place its Redis clients are made."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from chancery.auth import Authenticator, utcnow
from chancery.contract import is_country
from chancery.settings import ApiSettings
from services.platform.redis import REDIS_UNAVAILABLE, check_redis_mode, node_url, redis_client
from services.platform.runtime import frozen_startup_heap
from services.platform.web import (
    CorrelationIdMiddleware,
    Problem,
    authenticator_from,
    install_error_handlers,
    problem_response,
)
from services.webhooks.store import RedisSubscriptionStore, SubscriptionStore
from services.webhooks.targets import TargetPolicy, TargetRefusedError

from .body_cache import BodyCache
from .context import ApiContext
from .cors import Cors
from .errors import SubscriptionNotFoundError, subscription_problem, to_problem
from .metrics import ApiMetrics, MetricsMiddleware
from .principals import VerifiedPrincipals
from .reader import NotReadyError, ReadError, ReadModelReader
from .redis_reader import SCRIPTS, ClusterRoundTrips, RedisReadModelReader
from .representation import EXPOSED_HEADERS, MIN_POSITION_HEADER
from .routes import (
    atlas,
    events,
    history,
    operations,
    people,
    relations,
    stream,
    subscriptions,
    timelines,
)
from .sessions import SessionCookies, with_sessions
from .stream_slots import StreamSlots

RETRY_AFTER_S = 5
STREAM_CONNECTIONS = 1000
READ_CONNECTIONS = 32

DESCRIPTION = """
Reads of Chancery's read models: relations between states and organisations, timelines,
itineraries and visits, people and events, and a live stream of events.

**Consistency.** Every answer says which position of the event log it reflects
(`Chancery-Position`, and `position` in the body) and how far the read models trail the log
(`Chancery-Lag`, in events). To read your own write, pass the position ingest returned as
`min_position` (or the `Chancery-Min-Position` header): the API waits up to 5 s for the
projector, then answers, or answers 504 if it did not get there (never a stale answer).
While the read models are rebuilt from the log, reads answer 503 with Retry-After.

**Time.** `as_of=DATE` answers from the history as of that day; `known_at=DATETIME` answers
with what Chancery had recorded by then (bitemporal).

**Caching.** Read-model answers carry a weak ETag; send it back in If-None-Match for 304.

**Webhooks.** `/v1/subscriptions` subscribes a URL to the events the stream's filters
choose: each is POSTed as a CloudEvent signed as Standard Webhooks, at least once, in order
per subject, by `chancery deliver`. These routes take the scope `subscriptions:write`.

**Auth.** Scope `events:read`, as `Authorization: Bearer <API key or JWT>` (the stream also
takes `?access_token=`). `/healthz`, `/readyz` and `/metrics` are open.
"""


def _untimed_pool(url: str, name: str, connections: int) -> Redis:
    """A connection pool with no socket timeout: its user bounds each block or round trip."""
    return redis_client(
        url,
        client_name=name,
        socket_timeout=None,
        health_check_interval=0,
        max_connections=connections,
    )


async def _redis_reader(settings: ApiSettings, stack: AsyncExitStack) -> RedisReadModelReader:
    """The reader on the Redis the settings name: one server, or a Redis Cluster.

    Reads hold their connections and time each round trip as a whole; blocking reads
    (streams, min_position waits) get a pool of their own, with no socket timeout shorter
    than a block (see redis_reader/). On a cluster, each master gets the same two pools, and
    redis-py's cluster client keeps the map of slots to masters."""
    url = settings.redis_url
    await check_redis_mode(url, cluster=settings.redis_cluster)
    if not settings.redis_cluster:
        reads = _untimed_pool(url, "api-reads", READ_CONNECTIONS)
        stack.push_async_callback(reads.aclose)
        blocking = _untimed_pool(url, "api-stream", STREAM_CONNECTIONS)
        stack.push_async_callback(blocking.aclose)
        reader = RedisReadModelReader(reads, blocking, topic=settings.topic)
    else:
        slots = redis_client(url, cluster=True, client_name="api-slots", max_connections=4)
        stack.push_async_callback(slots.aclose)

        def node_client(host: str, port: int, blocking: bool) -> Redis:
            name, connections = (
                ("api-stream", STREAM_CONNECTIONS) if blocking else ("api-reads", READ_CONNECTIONS)
            )
            return _untimed_pool(node_url(url, host, port), name, connections)

        round_trips = ClusterRoundTrips(slots, node_client, scripts=SCRIPTS)
        stack.push_async_callback(round_trips.aclose)
        reader = RedisReadModelReader(topic=settings.topic, round_trips=round_trips)
    await reader.start()
    return reader


def create_app(
    settings: ApiSettings,
    *,
    reader: ReadModelReader | None = None,
    authenticator: Authenticator | None = None,
    subscription_store: SubscriptionStore | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """Build the app. Tests pass the in-memory reader; production lets the lifespan build
    the Redis reader."""
    if any(origin.strip() == "*" for origin in settings.cors_origins):
        raise ValueError("CHANCERY_CORS_ORIGINS takes explicit origins only, not '*'")
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            chosen = reader
            if chosen is None:
                chosen = await _redis_reader(settings, stack)
            store = subscription_store
            if store is None:
                # Subscriptions are the one thing the API writes (never a read model).
                hooks = redis_client(
                    settings.redis_url, cluster=settings.redis_cluster, client_name="api-hooks"
                )
                stack.push_async_callback(hooks.aclose)
                store = RedisSubscriptionStore(hooks)
            chosen_authenticator = with_sessions(
                authenticator or authenticator_from(settings), settings
            )
            app.state.ctx = ApiContext(
                settings=settings,
                reader=chosen,
                authenticator=chosen_authenticator,
                metrics=metrics,
                streams=StreamSlots(settings.max_streams_per_client),
                clock=clock,
                bodies=BodyCache(),
                principals=VerifiedPrincipals(chosen_authenticator),
                subscriptions=store,
                targets=TargetPolicy.of(settings.webhook_allowed_networks),
            )
            is_country("USA")  # load the country table before the heap is frozen
            with frozen_startup_heap():
                yield

    app = FastAPI(
        title="Chancery API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(
        Cors,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET"],
        allow_headers=[
            "Authorization",
            "If-None-Match",
            "Last-Event-ID",
            MIN_POSITION_HEADER,
            "X-Correlation-ID",
        ],
        expose_headers=[*EXPOSED_HEADERS, "X-Correlation-ID"],
        max_age=600,
    )
    app.add_middleware(SessionCookies)
    app.add_middleware(CorrelationIdMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_error_handlers(app)

    async def on_read_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ReadError)
        if isinstance(exc, NotReadyError):
            metrics.not_ready.inc()
        return problem_response(request, to_problem(exc, retry_after_s=RETRY_AFTER_S))

    app.add_exception_handler(ReadError, on_read_error)

    async def on_redis_down(request: Request, exc: Exception) -> JSONResponse:
        metrics.not_ready.inc()
        return problem_response(
            request,
            Problem(
                503,
                "Service Unavailable",
                f"the read models cannot be reached ({type(exc).__name__}); retry",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ),
        )

    async def on_subscription_error(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, subscription_problem(exc))

    for refused in (SubscriptionNotFoundError, TargetRefusedError):
        app.add_exception_handler(refused, on_subscription_error)

    # Redis down, or a slot of the cluster without a master (a failover under way): 503,
    # never a partial answer. (Not OSError itself: only Redis's own errors mean Redis.)
    for unreachable in REDIS_UNAVAILABLE:
        if unreachable is not OSError:
            app.add_exception_handler(unreachable, on_redis_down)
    for module in (
        relations,
        history,
        timelines,
        people,
        events,
        stream,
        subscriptions,
        operations,
        atlas,
    ):
        app.include_router(module.router)
    subscriptions.document_webhook(app)
    return app
