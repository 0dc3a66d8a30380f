"""The composition root of ingest: the only place its Kafka and Redis clients are made."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from chancery.auth import Authenticator, utcnow
from chancery.settings import IngestSettings
from services.platform.kafka import event_log_producer
from services.platform.redis import redis_client
from services.platform.web import (
    CorrelationIdMiddleware,
    authenticator_from,
    install_error_handlers,
)

from .context import IngestContext
from .idempotency import IdempotencyStore, RedisIdempotencyStore
from .metrics import IngestMetrics
from .publisher import EventPublisher, KafkaEventPublisher
from .routes import router
from .service import IngestService

DESCRIPTION = """
The front door of Chancery. Events are CloudEvents 1.0 (structured JSON mode) whose `type`
is one of the `diplomacy.*` catalogue. An accepted event is durably in the Kafka log when
the 202 is sent; the answer carries its position, which the API accepts as `min_position`
so a client can read its own write. Resubmitting the same (`source`, `id`) with the same
content is safe: it gets the same answer and nothing is appended twice.
"""


def create_app(
    settings: IngestSettings,
    *,
    publisher: EventPublisher | None = None,
    idempotency: IdempotencyStore | None = None,
    authenticator: Authenticator | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """Build the app. Tests pass in-memory twins; production lets the lifespan build clients."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pub = publisher
            if pub is None:
                kafka = KafkaEventPublisher(
                    event_log_producer(
                        settings.kafka_bootstrap_servers,
                        client_id="ingest",
                        linger_ms=settings.linger_ms,
                        request_timeout_ms=int(settings.publish_timeout_s * 1000),
                    ),
                    settings.topic,
                )
                await kafka.start()
                stack.push_async_callback(kafka.stop)
                pub = kafka
            store = idempotency
            if store is None:
                redis = redis_client(settings.redis_url, client_name="ingest")
                stack.push_async_callback(redis.aclose)
                store = RedisIdempotencyStore(
                    redis,
                    ttl_s=settings.idempotency_ttl_s,
                    pending_ttl_ms=int(settings.publish_timeout_s * 2000),
                )
            app.state.ctx = IngestContext(
                settings=settings,
                service=IngestService(
                    pub, store, clock=clock, publish_timeout_s=settings.publish_timeout_s
                ),
                publisher=pub,
                idempotency=store,
                authenticator=authenticator or authenticator_from(settings),
                metrics=IngestMetrics(),
            )
            yield

    app = FastAPI(
        title="Chancery ingest",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(CorrelationIdMiddleware)
    install_error_handlers(app)
    app.include_router(router)
    return app
