"""The composition root of the delivery worker (`chancery deliver`): its clients are made here.

Redis (subscriptions, positions, leases: `RedisSubscriptionStore`), one HTTP session for every
target (aiohttp: connections only to allowed addresses, `guarded_connector`; no redirects; no
proxy from the environment), one Kafka consumer per subscription delivered (assigned every
partition, no consumer group: a subscription's position is its own, kept in Redis), and a
small status server (`/healthz`, `/status`) on CHANCERY_DELIVER_PORT.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chancery.settings import DeliverSettings
from services.platform.kafka import event_log_consumer
from services.platform.redis import redis_client
from services.platform.worker import serving_status, stop_on_signals

from .runner import RunnerSettings, SubscriptionRunner
from .sender import WebhookSender
from .store import RedisSubscriptionStore, SubscriptionRecord
from .targets import TargetPolicy, guarded_connector
from .worker import DeliveryWorker

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
METADATA_TIMEOUT_S = 30.0


# Connections open at once, to every target and to any one: one slow receiver can hold at
# most a fifth of the pool, and the others keep theirs.
MAX_CONNECTIONS = 500
MAX_CONNECTIONS_PER_HOST = 100
# An idle connection is closed after this long (the receiver may have forgotten it).
KEEPALIVE_S = 5.0


def http_session(settings: DeliverSettings) -> aiohttp.ClientSession:
    """The session every webhook goes out through.

    Each step is bounded: waiting for a connection (from the pool, or a new one) by
    `deliver_timeout_s`, the TCP and TLS handshake by CONNECT_TIMEOUT_S, each wait for the
    receiver's bytes by `deliver_timeout_s`. aiohttp bounds no write, so a receiver that takes
    the connection and never reads the request would hold the attempt forever: the whole
    attempt is bounded too, by the handshake's time and the receiver's."""
    connect_s = min(CONNECT_TIMEOUT_S, settings.deliver_timeout_s)
    policy = TargetPolicy.of(settings.webhook_allowed_networks)
    connector = guarded_connector(
        policy,
        limit=MAX_CONNECTIONS,
        limit_per_host=MAX_CONNECTIONS_PER_HOST,
        keepalive_s=KEEPALIVE_S,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=connect_s + settings.deliver_timeout_s,
            connect=settings.deliver_timeout_s,
            sock_connect=connect_s,
            sock_read=settings.deliver_timeout_s,
        ),
        trust_env=False,
        auto_decompress=False,  # the answer is asked for uncompressed; what comes is kept raw
    )


def runner_settings(settings: DeliverSettings) -> RunnerSettings:
    return RunnerSettings(
        concurrency=settings.deliver_concurrency,
        max_buffered=settings.deliver_max_buffered,
        max_attempts=settings.deliver_max_attempts,
        max_failing_s=settings.deliver_max_failing_hours * 3600,
        backoff_first_s=settings.deliver_backoff_first_s,
        backoff_max_s=settings.deliver_backoff_max_s,
        attempts_kept=settings.deliver_attempts_kept,
    )


async def run(settings: DeliverSettings, stop: asyncio.Event | None = None) -> None:
    """Deliver every active subscription until `stop` (SIGINT/SIGTERM when not given)."""
    stop = stop or stop_on_signals()
    async with AsyncExitStack() as stack:
        redis = redis_client(
            settings.redis_url, cluster=settings.redis_cluster, client_name="deliver"
        )
        stack.push_async_callback(redis.aclose)
        store = RedisSubscriptionStore(redis)
        session = http_session(settings)
        stack.push_async_callback(session.close)
        sender = WebhookSender(session)
        tuning = runner_settings(settings)

        @asynccontextmanager
        async def runners(
            record: SubscriptionRecord, token: str
        ) -> AsyncIterator[SubscriptionRunner]:
            subscription = record.subscription
            consumer = event_log_consumer(
                settings.kafka_bootstrap_servers,
                client_id=f"deliver-{subscription.id}",
                group_id=None,
                max_poll_records=settings.deliver_max_buffered,
            )
            partitions = await _partitions(settings.kafka_bootstrap_servers, settings.topic)
            await consumer.start()
            try:
                tps = [TopicPartition(settings.topic, p) for p in range(partitions)]
                consumer.assign(tps)
                for tp in tps:
                    delivered = record.position.get(tp.partition)
                    if delivered is None:
                        await consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, delivered + 1)
                yield SubscriptionRunner(
                    subscription,
                    start=record.position,
                    failing_since=record.status.failing_since,
                    reader=consumer,
                    send=sender.send,
                    store=store,
                    token=token,
                    settings=tuning,
                )
            finally:
                await consumer.stop()

        worker = DeliveryWorker(
            store, runners, lease_s=settings.deliver_lease_s, poll_s=settings.deliver_poll_s
        )
        async with serving_status(
            status_app(worker),
            host=settings.status_host,
            port=settings.status_port,
            name="deliver-status",
        ):
            await worker.run(stop)


async def _partitions(bootstrap: str, topic: str) -> int:
    """How many partitions the topic has (it must exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="chancery-deliver")
    try:
        async with asyncio.timeout(METADATA_TIMEOUT_S):
            await admin.start()
            (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        raise RuntimeError(f"topic {topic!r} not found in Kafka")
    return len(described["partitions"])


def status_app(worker: DeliveryWorker) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def status(_: Request) -> JSONResponse:
        return JSONResponse(worker.status())

    return Starlette(routes=[Route("/healthz", healthz), Route("/status", status)])
