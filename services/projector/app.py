"""The composition root of the projector: the only place its clients are made.

`run_live` is the long-running service (`chancery projector`); `run_rebuild` fills a new
read-model version from the start of the log and flips the pointer (`chancery rebuild`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from chancery.settings import ProjectorSettings
from services.platform.kafka import event_log_consumer, event_log_producer
from services.platform.redis import check_redis_mode, redis_client
from services.platform.runtime import frozen_startup_heap
from services.platform.topics import TopicMissingError, check_topics, topics_from_settings
from services.platform.worker import serving_status, stop_on_signals

from .deadletters import KafkaDeadLetters
from .metrics import ProjectorMetrics
from .progress import Progress
from .projection import ReadModelProjection
from .projector import Projector
from .status import status_app
from .store import RedisReadModelWriter

logger = logging.getLogger(__name__)

START_RETRY_S = 1.0
YOUNG_PER_EVENT = 25
"""The collector's first-generation threshold while the projector runs, per event of a round
(`CHANCERY_PROJECTOR_BATCH_EVENTS`). A round and the one fetched ahead hold some 20 young
containers per event of a round (the event and its data, their dicts and field sets, the
LogRecord, aiokafka's record), all freed by reference counting when the round ends. Below
that, a collection starts every few rounds and scans every one of them for nothing; above a
round's worth it almost never runs, so the threshold grows with the round. What it costs in
memory, and what it saves: docs/performance.md."""


def gen0_threshold(max_batch_events: int) -> int:
    return YOUNG_PER_EVENT * max_batch_events


async def _start_kafka_client(client: AIOKafkaConsumer | AIOKafkaProducer, what: str) -> None:
    """Start a client, waiting (logged) while Kafka is unreachable."""
    while True:
        try:
            await client.start()
        except (KafkaError, OSError) as exc:
            logger.warning("cannot reach Kafka for the %s yet (%s); retrying", what, exc)
            with contextlib.suppress(Exception):
                await client.stop()
            await asyncio.sleep(START_RETRY_S)
        else:
            return


async def _partition_count(producer: AIOKafkaProducer, topic: str) -> int:
    """How many partitions the topic has; waits (bounded) for it to exist."""
    try:
        async with asyncio.timeout(60):
            partitions = await producer.partitions_for(topic)
    except TimeoutError:
        raise RuntimeError(f"topic {topic!r} not found in Kafka after 60 s") from None
    return len(partitions)


@asynccontextmanager
async def _projector(
    settings: ProjectorSettings,
    *,
    group_id: str | None,
    on_progress: Callable[[Progress], None] | None = None,
) -> AsyncIterator[tuple[Projector, RedisReadModelWriter, ProjectorMetrics]]:
    async with AsyncExitStack() as stack:
        await check_redis_mode(settings.redis_url, cluster=settings.redis_cluster)
        redis = redis_client(
            settings.redis_url,
            cluster=settings.redis_cluster,
            client_name="projector",
            native_packing=True,
        )
        stack.push_async_callback(redis.aclose)
        consumer = event_log_consumer(
            settings.kafka_bootstrap_servers,
            client_id="projector" if group_id else "rebuild",
            group_id=group_id,
            max_poll_records=settings.max_batch_events,
        )
        await _start_kafka_client(consumer, "consumer")
        stack.push_async_callback(consumer.stop)
        producer = event_log_producer(settings.kafka_bootstrap_servers, client_id="dead-letters")
        await _start_kafka_client(producer, "dead-letter producer")
        stack.push_async_callback(producer.stop)
        writer = RedisReadModelWriter(
            redis, topic=settings.topic, stream_max_len=settings.stream_max_len
        )
        metrics = ProjectorMetrics()
        partitions = await _partition_count(producer, settings.topic)
        # Refuse a log that does not meet the settings (a configured partition count the
        # topic does not have, fewer replicas or in-sync replicas than required).
        try:
            await check_topics(settings.kafka_bootstrap_servers, topics_from_settings(settings))
        except TopicMissingError as exc:  # the dead-letter topic: parking waits for it
            logger.warning("%s", exc)
        projector = Projector(
            consumer,
            writer,
            ReadModelProjection(redis),
            KafkaDeadLetters(producer, settings.dead_letter_topic),
            metrics,
            topic=settings.topic,
            partitions=partitions,
            max_batch=settings.max_batch_events,
            fetch_timeout_ms=settings.fetch_timeout_ms,
            on_progress=on_progress,
        )
        yield projector, writer, metrics


async def run_live(settings: ProjectorSettings, stop: asyncio.Event | None = None) -> None:
    stop = stop or stop_on_signals()
    async with (
        _projector(settings, group_id=settings.group_id) as (projector, _, metrics),
        serving_status(
            status_app(projector, metrics),
            host=settings.status_host,
            port=settings.status_port,
            name="projector-status",
        ),
    ):
        await projector.start_live()
        with frozen_startup_heap(gen0_threshold=gen0_threshold(settings.max_batch_events)):
            await projector.run(stop)


async def run_rebuild(
    settings: ProjectorSettings,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    keep_old: bool = False,
    grace_s: float = 10.0,
) -> tuple[int, int | None]:
    """Build a new version from offset 0 while the old one serves, then flip the pointer.

    Returns (new version, replaced version). The replaced version's keys are dropped after
    `grace_s`, so reads that resolved the old pointer just before the flip can finish.
    """
    async with _projector(settings, group_id=None, on_progress=on_progress) as (
        projector,
        writer,
        _,
    ):
        partitions = projector.partitions
        version = await writer.new_version(partitions)
        logger.info("rebuilding read models into version %d", version)
        await projector.start_rebuild(version)
        with frozen_startup_heap(gen0_threshold=gen0_threshold(settings.max_batch_events)):
            await projector.run(asyncio.Event())
        if not await writer.mark_ready_if_caught_up(version, partitions):
            raise RuntimeError(f"version {version} did not catch up; the pointer was not moved")
        old = await writer.activate(version)
        logger.info("read models: now serving version %d (was %s)", version, old)
        if old is not None and old != version and not keep_old:
            await asyncio.sleep(grace_s)
            removed = await writer.drop_version(old)
            logger.info("dropped %d keys of version %d", removed, old)
        return version, old
