"""The composition root of ingest: the only place its Kafka and Redis clients are made."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from starlette.types import ASGIApp, Receive, Scope, Send

from chancery.auth import Authenticator, utcnow
from chancery.contract import EVENT_TYPES, Event, is_country
from chancery.observability import configure_logging
from chancery.settings import IngestSettings
from services.platform.kafka import event_log_producer
from services.platform.redis import REDIS_UNAVAILABLE, check_redis_mode, redis_client
from services.platform.runtime import frozen_startup_heap
from services.platform.topics import (
    TopicMismatchError,
    TopicMissingError,
    check_topics,
    topics_from_settings,
)
from services.platform.web import (
    CorrelationIdMiddleware,
    authenticator_from,
    install_error_handlers,
)

from . import endpoint
from .context import IngestContext
from .idempotency import CoalescingIdempotencyStore, IdempotencyStore, RedisIdempotencyStore
from .metrics import IngestMetrics
from .publisher import EventPublisher, KafkaEventPublisher
from .routes import router, write_router
from .service import IngestService
from .targets import RedisTargetIndex, TargetIndex

logger = logging.getLogger(__name__)

FIRST_CONNECT_WAIT_S = 15.0
"""At most how long start waits for the first attempt to reach Kafka (and the check of the
topic after it), so that a topic that does not meet the settings stops ingest at start.
Kafka down, the attempt fails at once and ingest starts (answering 503) without it."""

DESCRIPTION = """
The front door of Chancery. Events are CloudEvents 1.0 (structured JSON mode, binary mode
for one event, or a JSON batch) whose `type` is one of the `diplomacy.*` catalogue. An
accepted event is durably in the Kafka log when the 202 is sent; the answer carries its
position, which the API accepts as `min_position` so a client can read its own write.
Resubmitting the same (`source`, `id`) with the same content is safe: it gets the same
answer and nothing is appended twice.

Errors are `application/problem+json` (RFC 9457) naming what is wrong; a 503 carries
`Retry-After` and means nothing of the request was reported written that is not:
retry the same request.
"""


# A batch request keeps some ten thousand container objects alive until it is answered
# (1,000 events, several objects each), and a few are in flight. With a threshold below one
# batch's worth, young collections run within every batch and the older generations keep
# rescanning everything in flight, though none of it is garbage yet. Well above a batch,
# most requests end between collections and reference counting frees their objects; what a
# collection cannot free is still bounded by the threshold. (Measured: docs/performance.md.)
GEN0_THRESHOLD = 50_000


def create_app(
    settings: IngestSettings,
    *,
    publisher: EventPublisher | None = None,
    idempotency: IdempotencyStore | None = None,
    authenticator: Authenticator | None = None,
    targets: TargetIndex | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """Build the app. Tests pass in-memory twins; production lets the lifespan build clients."""
    metrics = IngestMetrics()
    pending_ttl_ms = int(settings.publish_timeout_s * 2000)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Callbacks run last-pushed first: stop Kafka (flush, bounded), then let unknown
        # outcomes settle into Redis, then close Redis.
        async with AsyncExitStack() as stack:
            stack.callback(metrics.process_exits)
            store, index = idempotency, targets
            if store is None:
                await _check_redis(settings)
                redis = redis_client(
                    settings.redis_url,
                    cluster=settings.redis_cluster,
                    client_name="ingest",
                    native_packing=True,
                )
                stack.push_async_callback(redis.aclose)
                store = CoalescingIdempotencyStore(
                    RedisIdempotencyStore(
                        redis,
                        ttl_s=settings.idempotency_ttl_s,
                        pending_ttl_ms=pending_ttl_ms,
                        op_timeout_s=settings.publish_timeout_s,
                    )
                )
                if index is None:
                    index = RedisTargetIndex(redis, op_timeout_s=settings.publish_timeout_s)
            kafka: KafkaEventPublisher | None = None
            pub = publisher
            if pub is None:
                pub = kafka = KafkaEventPublisher(
                    lambda: event_log_producer(
                        settings.kafka_bootstrap_servers,
                        client_id="ingest",
                        linger_ms=settings.linger_ms,
                        request_timeout_ms=int(settings.publish_timeout_s * 1000),
                    ),
                    settings.topic,
                    check=lambda: _topic_refused(settings),
                )
            service = IngestService(
                pub,
                store,
                clock=clock,
                publish_timeout_s=settings.publish_timeout_s,
                pending_ttl_s=pending_ttl_ms / 1000,
                observe_publish=metrics.publish_latency.observe,
                targets=index,
            )
            stack.push_async_callback(service.aclose)
            if kafka is not None:
                stack.push_async_callback(kafka.stop)
                await kafka.start()
                refused = await kafka.first_attempt(FIRST_CONNECT_WAIT_S)
                if refused is not None:
                    raise TopicMismatchError(refused)
            app.state.ctx = IngestContext(
                settings=settings,
                service=service,
                publisher=pub,
                idempotency=store,
                authenticator=authenticator or authenticator_from(settings),
                metrics=metrics,
            )
            is_country("USA")  # load the country table before the heap is frozen
            with frozen_startup_heap(gen0_threshold=GEN0_THRESHOLD):
                yield

    app = IngestApp(
        title="Chancery ingest",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(InFlightMiddleware, metrics=metrics)
    app.add_middleware(CorrelationIdMiddleware)
    install_error_handlers(app)
    app.include_router(write_router)
    app.include_router(router)
    return app


async def _check_redis(settings: IngestSettings) -> None:
    """Refuse a Redis that is not what the settings say (a cluster or not). Ingest starts
    while Redis is down (it answers 503 until Redis is back): then there is nothing to ask."""
    try:
        await check_redis_mode(settings.redis_url, cluster=settings.redis_cluster)
    except REDIS_UNAVAILABLE as exc:
        logger.warning("Redis unreachable at start (%r); serving 503 until it answers", exc)


async def _topic_refused(settings: IngestSettings) -> str | None:
    """Why the event log does not meet the settings (None: it does): checked when the
    producer first connects."""
    try:
        await check_topics(settings.kafka_bootstrap_servers, topics_from_settings(settings))
    except TopicMissingError as exc:  # not created yet: /readyz says so until it is
        logger.warning("%s", exc)
    except TopicMismatchError as exc:
        return str(exc)
    return None


def app_from_environment() -> FastAPI:
    """The app with its settings and logging from the environment: what each worker process
    of `python -m services.ingest` builds when CHANCERY_INGEST_WORKERS > 1."""
    settings = IngestSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="ingest")
    return create_app(settings)


class InFlightMiddleware:
    """Pure ASGI: counts the ingest requests being served, from first byte to last."""

    def __init__(self, app: ASGIApp, *, metrics: IngestMetrics) -> None:
        self.app = app
        self.gauge = metrics.in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.dec()


class IngestApp(FastAPI):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The two write routes go straight to their endpoint (endpoint.py says why); every
        # other request, and these before the lifespan has made the context, go to FastAPI.
        if scope["type"] == "http" and scope["method"] == "POST":
            batch = endpoint.WRITE_PATHS.get(scope["path"])
            ctx = getattr(self.state, "ctx", None)
            if batch is not None and isinstance(ctx, IngestContext):
                await endpoint.serve(ctx, scope, receive, send, batch=batch)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, plus the `Event` schema (the contract's union) the bodies name."""
        if self.openapi_schema is None:
            schema = get_openapi(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=self.routes,
            )
            event = TypeAdapter(Event).json_schema(ref_template="#/components/schemas/{model}")
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`chk_...`) or a signed JWT (HS256) whose scopes "
                    "include `events:write`: `Authorization: Bearer <key or token>`.",
                }
            }
            components = schema["components"].setdefault("schemas", {})
            components.update(event.pop("$defs", {}))
            components["Event"] = {
                **event,
                "description": "A Chancery event: CloudEvents 1.0, structured JSON mode. The "
                "service sets recordedtime and partitionkey; a client must not send them.",
            }
            payloads = {
                cls.model_fields["data"].annotation.__name__  # type: ignore[union-attr]
                for cls in EVENT_TYPES.values()
            }
            components["EventOrData"] = {
                "anyOf": [
                    {"$ref": "#/components/schemas/Event"},
                    *({"$ref": f"#/components/schemas/{name}"} for name in sorted(payloads)),
                ],
                "description": "Structured mode: the event. Binary mode (`ce-` headers): the "
                "event's data, of the payload its `ce-type` names.",
            }
            self.openapi_schema = schema
        return self.openapi_schema
