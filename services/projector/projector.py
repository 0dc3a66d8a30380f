"""The projector's loop: Kafka partitions in, one atomic Redis write per partition batch out.

Positions live in Redis, beside the read models: on start, on every assignment and when the
served version changes, each partition is sought to the offset stored there. Kafka's
committed offsets are written too, after Redis, only so that standard lag tools work; they
are never read back.

Two modes share this code. *Live* (a consumer group; several instances share partitions)
follows the version pointer. *Rebuild* (every partition assigned by hand) fills one given
version from the start of the log and returns once every partition has caught up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chancery.contract import Event, decode_event
from chancery.keyspace import PartitionSpace
from chancery.observability import correlation_id

from .deadletters import DeadLetters, Poison
from .metrics import ProjectorMetrics
from .plan import WritePlan
from .store import Fenced, RedisReadModelWriter

logger = logging.getLogger(__name__)

POINTER_CHECK_S = 0.5
KAFKA_COMMIT_EVERY_S = 2.0
REDIS_RETRY_S = 0.5


@dataclass(frozen=True)
class LogRecord:
    """One decoded record of the event log."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    event: Event


class Projection(Protocol):
    """Turns a partition batch into writes; reads current state from Redis as it needs."""

    async def plan(self, space: PartitionSpace, records: Sequence[LogRecord]) -> WritePlan: ...


@dataclass(frozen=True)
class Progress:
    applied: int  # events applied (offsets covered) across partitions
    total: int  # events in the log across partitions (high watermarks)


class Projector:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        writer: RedisReadModelWriter,
        projection: Projection,
        dead_letters: DeadLetters,
        metrics: ProjectorMetrics,
        *,
        topic: str,
        partitions: int,
        max_batch: int,
        fetch_timeout_ms: int,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._writer = writer
        self._projection = projection
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._topic = topic
        self._max_batch = max_batch
        self._fetch_timeout_ms = fetch_timeout_ms
        self._rebuilding = False
        self._version = 0
        self._partitions = partitions
        self._on_progress = on_progress
        self._expected: dict[int, int | None] = {}
        self._high: dict[int, int] = {}
        self._last_pointer_check = 0.0
        self._last_commit = 0.0
        self._ready = False

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def partitions(self) -> int:
        return self._partitions

    def status(self) -> dict[str, object]:
        """This instance's view: version, readiness, and per assigned partition its lag."""
        partitions = []
        for p in sorted(self._expected):
            applied = self._expected[p]
            high = self._high.get(p, 0)
            partitions.append(
                {
                    "partition": p,
                    "applied_offset": applied,
                    "high_watermark": high,
                    "lag": max(0, high - ((applied if applied is not None else -1) + 1)),
                }
            )
        return {
            "version": self._version,
            "mode": "rebuild" if self._rebuilding else "live",
            "ready": self._ready,
            "partitions": partitions,
        }


    def listener(self) -> ConsumerRebalanceListener:
        return _Rebalance(self)

    async def start_live(self) -> None:
        """Join the group; positions are loaded in the assignment callback."""
        self._version = await self._writer.ensure_active_version(self._partitions)
        self._metrics.version.set(self._version)
        self._consumer.subscribe([self._topic], listener=self.listener())

    async def start_rebuild(self, version: int) -> None:
        """Take every partition by hand and fill `version`, from its stored offsets."""
        self._version = version
        self._rebuilding = True
        tps = [TopicPartition(self._topic, p) for p in range(self._partitions)]
        self._consumer.assign(tps)
        await self.load_positions(tps)

    async def run(self, stop: asyncio.Event) -> None:
        """Apply batches until `stop` is set (live) or every partition caught up (rebuild)."""
        while not stop.is_set():
            try:
                if not self._rebuilding:
                    await self._follow_pointer()
                batches = await self._consumer.getmany(
                    timeout_ms=self._fetch_timeout_ms, max_records=self._max_batch
                )
                for tp, records in batches.items():
                    await self._apply(tp, records)
                await self._after_round()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                logger.warning("Redis unavailable (%s); retrying from the stored offsets", exc)
                await asyncio.sleep(REDIS_RETRY_S)
                await self._reload_all()
            if self._rebuilding and self._all_caught_up():
                return

    # --- positions -------------------------------------------------------------------------------

    async def load_positions(self, tps: Sequence[TopicPartition]) -> None:
        """Seek each partition to the offset stored in Redis for the current version."""
        if not tps:
            return
        ends = await self._consumer.end_offsets(list(tps))
        for tp in tps:
            space = PartitionSpace(self._version, tp.partition)
            stored = await self._writer.stored_offset(space)
            self._expected[tp.partition] = stored
            if stored is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, stored + 1)
            end = int(ends[tp])
            self._high[tp.partition] = end
            if (stored if stored is not None else -1) + 1 >= end:
                await self._writer.mark_caught_up(space, end)
            logger.info(
                "partition %d: version %d, resuming after offset %s of %d",
                tp.partition,
                self._version,
                stored,
                end,
            )

    def forget(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            self._expected.pop(tp.partition, None)

    async def _reload_all(self) -> None:
        try:
            if not self._rebuilding:
                self._version = await self._writer.ensure_active_version(self._partitions)
            await self.load_positions(sorted(self._consumer.assignment()))
        except (RedisConnectionError, RedisTimeoutError, OSError, KafkaError) as exc:
            logger.warning("still cannot reload positions: %s", exc)

    async def _follow_pointer(self) -> None:
        now = time.monotonic()
        if now - self._last_pointer_check < POINTER_CHECK_S:
            return
        self._last_pointer_check = now
        active = await self._writer.active_version()
        if active == self._version:
            return
        if active is None:
            logger.warning("the read-model pointer is gone (Redis emptied?): rebuilding")
        else:
            logger.info("the served version moved from %d to %d", self._version, active)
        self._version = await self._writer.ensure_active_version(self._partitions)
        self._ready = False
        self._metrics.version.set(self._version)
        await self.load_positions(sorted(self._consumer.assignment()))

    # --- one batch -------------------------------------------------------------------------------

    async def _apply(self, tp: TopicPartition, raw: Sequence[object]) -> None:
        p = tp.partition
        if p not in self._expected:
            return  # revoked while fetching
        expected = self._expected[p]
        fresh = [r for r in raw if expected is None or _offset(r) > expected]
        if not fresh:
            return
        started = time.perf_counter()
        token = correlation_id.set(f"p{p}@{_offset(fresh[0])}-{_offset(fresh[-1])}")
        try:
            records = await self._decode(tp, fresh)
            space = PartitionSpace(self._version, p)
            plan = await self._plan(tp, space, records)
            new_offset = _offset(fresh[-1])
            high = self._consumer.highwater(tp) or new_offset + 1
            self._high[p] = high
            outcome = await self._writer.apply(
                space,
                expected=expected,
                new_offset=new_offset,
                high_watermark=high,
                commands=plan.commands,
                keys=sorted(plan.keys),
            )
            if isinstance(outcome, Fenced):
                await self._fenced(tp, outcome)
                return
            self._expected[p] = new_offset
            self._metrics.applied.inc(len(records))
            self._metrics.applied_offset.labels(str(p)).set(new_offset)
            self._metrics.lag.labels(str(p)).set(max(0, high - new_offset - 1))
            self._metrics.batch_seconds.observe(time.perf_counter() - started)
        finally:
            correlation_id.reset(token)

    async def _decode(self, tp: TopicPartition, raw: Sequence[object]) -> list[LogRecord]:
        records: list[LogRecord] = []
        for r in raw:
            value: bytes = r.value  # type: ignore[attr-defined]
            key: bytes | None = r.key  # type: ignore[attr-defined]
            try:
                event = decode_event(value)
            except (ValidationError, ValueError) as exc:
                await self._park(tp, _offset(r), key, value, f"undecodable: {_reason(exc)}")
                continue
            records.append(LogRecord(tp.partition, _offset(r), key, value, event))
        return records

    async def _plan(
        self, tp: TopicPartition, space: PartitionSpace, records: list[LogRecord]
    ) -> WritePlan:
        try:
            return await self._projection.plan(space, records)
        except (RedisConnectionError, RedisTimeoutError):
            raise
        except Exception:
            logger.exception("a batch failed to fold; isolating the poison events")
        good: list[LogRecord] = []
        for record in records:
            try:
                await self._projection.plan(space, [record])
            except (RedisConnectionError, RedisTimeoutError):
                raise
            except Exception as exc:  # noqa: BLE001
                await self._park(
                    tp, record.offset, record.key, record.value, f"fold failed: {_reason(exc)}"
                )
            else:
                good.append(record)
        return await self._projection.plan(space, good)

    async def _park(
        self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes, reason: str
    ) -> None:
        await self._dead_letters.park(Poison(tp.topic, tp.partition, offset, key, value, reason))
        self._metrics.dead_letters.labels(reason.split(":", 1)[0]).inc()

    async def _fenced(self, tp: TopicPartition, fenced: Fenced) -> None:
        self._metrics.fenced.inc()
        logger.warning(
            "partition %d: stored offset is %s, not %s: another instance wrote it; re-seeking",
            tp.partition,
            fenced.stored,
            self._expected.get(tp.partition),
        )
        self._expected[tp.partition] = fenced.stored
        if fenced.stored is None:
            await self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek(tp, fenced.stored + 1)

    # --- after each round ------------------------------------------------------------------------

    async def _after_round(self) -> None:
        if not self._ready and self._all_caught_up():
            self._ready = await self._writer.mark_ready_if_caught_up(
                self._version, self._partitions
            )
        if self._on_progress is not None:
            applied = sum((o if o is not None else -1) + 1 for o in self._expected.values())
            self._on_progress(Progress(applied=applied, total=sum(self._high.values())))
        now = time.monotonic()
        if not self._rebuilding and now - self._last_commit >= KAFKA_COMMIT_EVERY_S:
            self._last_commit = now
            await self._commit_to_kafka()

    def _all_caught_up(self) -> bool:
        for tp in self._consumer.assignment():
            applied = self._expected.get(tp.partition)
            high = self._consumer.highwater(tp) or self._high.get(tp.partition, 0)
            if (applied if applied is not None else -1) + 1 < high:
                return False
        return bool(self._consumer.assignment())

    async def _commit_to_kafka(self) -> None:
        offsets = {
            TopicPartition(self._topic, p): o + 1
            for p, o in self._expected.items()
            if o is not None
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # informational only: Redis holds the real positions
            logger.debug("Kafka offset commit skipped: %s", exc)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._projector.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._projector.load_positions(sorted(assigned))


def _offset(record: object) -> int:
    return int(record.offset)  # type: ignore[attr-defined]


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        return f"{exc.error_count()} error(s), first at {loc}: {first['msg']}"
    return f"{type(exc).__name__}: {exc}"
