"""Publishing events to the log: the port, the Kafka adapter and its in-memory twin.

`publish` sends a whole request's records and returns, per record, where it landed or why
it did not. It never raises for a single record: the caller decides what a partial
failure means (it records the successes for idempotent retry and answers 503).
A bounded timeout covers the whole call; a send still unresolved then has an unknown
outcome and is reported as failed, never as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

logger = logging.getLogger(__name__)

CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json")


@dataclass(frozen=True)
class OutgoingRecord:
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Written:
    partition: int
    offset: int


@dataclass(frozen=True)
class NotWritten:
    reason: str


PublishResult = Written | NotWritten


class EventPublisher(Protocol):
    topic: str

    async def publish(
        self, records: Sequence[OutgoingRecord], *, timeout_s: float
    ) -> list[PublishResult]: ...

    async def is_ready(self) -> tuple[bool, str]: ...


class KafkaEventPublisher:
    """An idempotent aiokafka producer that connects, and reconnects, on its own.

    Ingest must start and answer (503) while Kafka is down, so the producer is started by a
    background task that retries with backoff instead of in the lifespan's critical path.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.topic = topic
        self._producer = producer
        self._started = asyncio.Event()
        self._starter: asyncio.Task[None] | None = None
        self._last_error = "not connected to Kafka yet"

    async def start(self) -> None:
        self._starter = asyncio.create_task(self._start_with_retry(), name="kafka-producer-start")

    async def _start_with_retry(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._producer.start()
            except (KafkaError, OSError) as exc:
                self._last_error = f"cannot reach Kafka: {exc}"
                logger.warning("Kafka producer start failed, retrying in %.1fs: %s", delay, exc)
                with contextlib.suppress(Exception):
                    await self._producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                self._started.set()
                logger.info("Kafka producer connected")
                return

    async def stop(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        if self._started.is_set():
            await self._producer.stop()

    async def publish(
        self, records: Sequence[OutgoingRecord], *, timeout_s: float
    ) -> list[PublishResult]:
        if not self._started.is_set():
            return [NotWritten(self._last_error)] * len(records)
        futures: list[asyncio.Future[object]] = []
        results: list[PublishResult] = [NotWritten("not sent")] * len(records)
        try:
            async with asyncio.timeout(timeout_s):
                for record in records:
                    futures.append(
                        await self._producer.send(
                            self.topic,
                            value=record.value,
                            key=record.key,
                            headers=[CONTENT_TYPE_HEADER],
                        )
                    )
                await asyncio.wait(futures)
        except TimeoutError:
            logger.warning("publish timed out after %.1fs", timeout_s)
        except KafkaError as exc:
            logger.warning("publish failed: %s", exc)
        for i, future in enumerate(futures):
            if not future.done():
                future.cancel()
                results[i] = NotWritten("timed out: outcome unknown")
            elif future.cancelled():
                results[i] = NotWritten("cancelled")
            elif (error := future.exception()) is not None:
                results[i] = NotWritten(f"{type(error).__name__}: {error}")
            else:
                metadata = future.result()
                results[i] = Written(metadata.partition, metadata.offset)  # type: ignore[attr-defined]
        if any(isinstance(r, NotWritten) for r in results):
            self._last_error = next(r.reason for r in results if isinstance(r, NotWritten))
        return results

    async def is_ready(self) -> tuple[bool, str]:
        if not self._started.is_set():
            return False, self._last_error
        try:
            async with asyncio.timeout(2.0):
                partitions = await self._producer.partitions_for(self.topic)
        except (TimeoutError, KafkaError) as exc:
            return False, f"Kafka metadata unavailable: {exc or type(exc).__name__}"
        if not partitions:
            return False, f"topic {self.topic!r} does not exist"
        # Metadata may be cached: ask a live broker connection as well.
        node = self._producer.client.get_random_node()
        if node is None or not await self._producer.client.ready(node):
            return False, "no Kafka broker is reachable"
        return True, f"topic {self.topic!r} has {len(partitions)} partitions"


@dataclass
class InMemoryEventPublisher:
    """The twin for unit tests: keeps records per partition; can be switched off."""

    topic: str = "chancery.events"
    partitions: int = 6
    available: bool = True
    log: dict[int, list[OutgoingRecord]] = field(default_factory=dict)

    async def publish(
        self, records: Sequence[OutgoingRecord], *, timeout_s: float
    ) -> list[PublishResult]:
        if not self.available:
            return [NotWritten("broker unavailable")] * len(records)
        results: list[PublishResult] = []
        for record in records:
            partition = zlib.crc32(record.key) % self.partitions
            entries = self.log.setdefault(partition, [])
            entries.append(record)
            results.append(Written(partition, len(entries) - 1))
        return results

    async def is_ready(self) -> tuple[bool, str]:
        return self.available, "in memory" if self.available else "switched off"

    def records(self) -> list[OutgoingRecord]:
        return [r for p in sorted(self.log) for r in self.log[p]]
