"""The projector's loop: Kafka partitions in, one atomic Redis write per partition batch out.

Positions live in Redis, beside the read models: on start, on every assignment and when the
served version changes, each partition is sought to the offset stored there (`ownership`).
Kafka's committed offsets are written too, after Redis, only so that standard lag tools work
(`kafka_commits`); they are never read back.

Two modes share this code. *Live* (a consumer group; several instances share partitions)
follows the version pointer (`version_pointer`). *Rebuild* (every partition assigned by hand)
fills one given version from the start of the log and returns once every partition has
caught up.

One round:
1. settle the scripts that have ended; follow the pointer (live) and load the positions of
   newly owned partitions, once every write in flight has settled;
2. fetch a share of the round from each partition and decode it, parking the undecodable
   (`fetching`, `poison`), unless the last round fetched it ahead;
3. send one pipelined read for every partition's batch (`projection`);
4. while it comes back, fetch and decode ahead for the next round;
5. fold each partition's batch and send its atomic script as soon as it is planned, once the
   partition's previous script has settled (`rounds`: rounds overlap);
6. report progress, mark the version ready once caught up, commit to Kafka.
A batch whose fold fails is applied one event at a time, parking the event that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import TopicPartition

from chancery.keyspace import PartitionSpace
from chancery.observability import correlation_id
from services.platform.redis import REDIS_UNAVAILABLE

from .consumer import EventLogConsumer
from .deadletters import DeadLetters, DeadLetterUnavailableError
from .fetching import FetchedRecords, Fetcher
from .kafka_commits import KafkaOffsetCommits
from .metrics import ProjectorMetrics
from .ownership import Ownership, RebalanceListener
from .plan import WritePlan
from .poison import PoisonParking, reason_of
from .progress import Progress, ProgressReport
from .projection import PendingRead, ReadModelProjection
from .rounds import BatchOutcomes, PartitionBatch, ScriptsInFlight
from .store import ReadModelWriter
from .version_pointer import VersionPointer

logger = logging.getLogger(__name__)

RETRY_S = 0.5
REDIS_ERRORS = REDIS_UNAVAILABLE
"""Redis cannot answer now (down, or a slot of the cluster without a master): the loop
retries from the stored offsets."""

__all__ = ["Projector"]


class Projector:
    def __init__(
        self,
        consumer: EventLogConsumer,
        writer: ReadModelWriter,
        projection: ReadModelProjection,
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
        self._metrics = metrics
        self._topic = topic
        self._partitions = partitions
        self._rebuilding = False
        self._owned = Ownership(topic, consumer, writer)
        self._pointer = VersionPointer(writer, metrics, partitions)
        self._parking = PoisonParking(dead_letters, metrics)
        self._fetcher = Fetcher(
            consumer,
            self._owned,
            self._parking,
            max_batch=max_batch,
            fetch_timeout_ms=fetch_timeout_ms,
        )
        self._outcomes = BatchOutcomes(self._owned, self._pointer, metrics)
        self._in_flight = ScriptsInFlight(writer, self._outcomes, metrics)
        self._commits = KafkaOffsetCommits(consumer, self._owned.committable_offsets)
        self._progress = ProgressReport(on_progress)
        self._read: PendingRead | None = None  # a read sent, its fold not started
        self._ahead: list[FetchedRecords] = []  # fetched and decoded ahead, for the next round

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._pointer.version

    @property
    def ready(self) -> bool:
        return self._pointer.ready

    @property
    def partitions(self) -> int:
        return self._partitions

    def status(self) -> dict[str, object]:
        """This instance's view: version, readiness, and per owned partition its lag."""
        return {
            "version": self._pointer.version,
            "mode": "rebuild" if self._rebuilding else "live",
            "ready": self._pointer.ready,
            "partitions": self._owned.status(),
        }

    def listener(self) -> RebalanceListener:
        return self._owned.listener()

    def assigned(self, tps: Sequence[TopicPartition]) -> None:
        self._owned.assigned(tps)

    async def start_live(self) -> None:
        """Join the group; positions are loaded by the loop once partitions are assigned."""
        await self._pointer.use(await self._writer.ensure_active_version(self._partitions))
        self._consumer.subscribe([self._topic], listener=self.listener())

    async def start_rebuild(self, version: int) -> None:
        """Take every partition by hand and fill `version`, from its stored offsets."""
        self._pointer.version = version
        self._rebuilding = True
        tps = [TopicPartition(self._topic, p) for p in range(self._partitions)]
        self._consumer.assign(tps)
        self._owned.assigned(tps)

    async def run(self, stop: asyncio.Event) -> None:
        """Apply batches until `stop` is set (live) or every partition caught up (rebuild)."""
        try:
            while not stop.is_set():
                try:
                    await self._round()
                    if self._rebuilding and self._caught_up(counting_in_flight=True):
                        await self._in_flight.settle_all()
                except REDIS_ERRORS as exc:
                    logger.warning("Redis unavailable (%r); retrying from the stored offsets", exc)
                    await self._retry_later()
                except DeadLetterUnavailableError as exc:
                    logger.warning("%s; retrying from the stored offsets", exc)
                    await self._retry_later()
                if self._rebuilding and self._caught_up():
                    self._progress.report(self._owned, force=True)
                    return
        finally:
            await self._abandon_in_flight()

    async def _retry_later(self) -> None:
        await self._abandon_in_flight()
        await asyncio.sleep(RETRY_S)
        self._owned.unload_all()
        if not self._rebuilding:
            self._pointer.check_now()

    # --- one round -------------------------------------------------------------------------------

    async def _round(self) -> None:
        self._in_flight.settle_finished()
        if not self._rebuilding and self._pointer.moved():
            await self._in_flight.settle_all()  # a version change unloads every partition
            if await self._pointer.follow():
                self._owned.unload_all()
        if self._owned.any_unloaded():
            await self._in_flight.settle_all()  # positions are read once their writes landed
            await self._owned.load_positions(self._pointer.version)
        fetched, self._ahead = self._ahead, []
        if not fetched:
            fetched = await self._fetcher.fetch()
        self._in_flight.settle_finished()
        batches = self._batches(fetched)
        if batches:
            read = await self._send_read(batches)
            # While Redis answers (after the scripts ahead of the read), take what the
            # consumer already holds for the next round: fetched and decoded, not waited for.
            self._ahead = await self._fetcher.fetch(wait=False)
            await self._fold_and_apply(batches, read)
        await self._after_round()

    def _batches(self, fetched: list[FetchedRecords]) -> list[PartitionBatch]:
        """The batches to apply: records of a partition revoked, or reloaded (re-sought)
        since they were fetched, are dropped; they will be fetched again from where Redis
        says. Records at or below the stored offset are dropped too."""
        batches = []
        for f in fetched:
            owned = f.owned
            if not self._owned.holds(owned) or not owned.loaded or owned.generation != f.generation:
                continue
            sent = self._in_flight.get(owned.partition)
            # from where the script in flight leaves it, if it succeeds (checked before send)
            expected = sent.batch.last_offset if sent is not None else owned.expected
            if expected is not None and f.last_offset <= expected:
                continue
            records = f.records
            if expected is not None and records and records[0].offset <= expected:
                records = [r for r in records if r.offset > expected]
            batches.append(
                PartitionBatch(
                    owned=owned,
                    space=PartitionSpace(self._pointer.version, owned.partition),
                    expected=expected,
                    last_offset=f.last_offset,
                    high=max(self._owned.high(owned), f.last_offset + 1),
                    records=records,
                )
            )
        return batches

    async def _send_read(self, batches: list[PartitionBatch]) -> PendingRead:
        """Send the read of the round's batches (with what the scripts in flight write)."""
        in_flight = [self._in_flight.get(b.owned.partition) for b in batches]
        if any(sent is not None and sent.writes.trips for sent in in_flight):
            await self._in_flight.settle_all()  # trip reads must see those writes: wait
            in_flight = [None for _ in batches]
        read = self._read = self._projection.read(
            [(b.space, b.records) for b in batches],
            [sent.writes if sent is not None else None for sent in in_flight],
        )
        await asyncio.sleep(0)  # let it go out before the CPU-bound work that follows
        return read

    async def _fold_and_apply(self, batches: list[PartitionBatch], read: PendingRead) -> None:
        """Fold the round's batches and send each one's script as soon as it is planned
        (Redis runs it while the next is folded); a batch whose fold failed is applied one
        event at a time, after the others (not overlapped: it is rare)."""
        duplicates = self._projection.duplicates
        failed: list[tuple[PartitionBatch, Exception]] = []
        self._read = None
        async with contextlib.aclosing(self._projection.plans(read)) as planned:
            async for i, plan, writes in planned:
                batch = batches[i]
                if isinstance(plan, Exception):
                    failed.append((batch, plan))
                    continue
                assert writes is not None
                await self._in_flight.settle(batch.owned.partition)
                if not self._owned.follows_on(batch.owned, batch.expected):
                    continue  # the previous script was fenced or failed: reloading
                self._in_flight.send(batch, plan, writes)
                await asyncio.sleep(0)  # let the task send the script before we go on
        self._metrics.duplicates.inc(self._projection.duplicates - duplicates)
        if failed:
            await self._in_flight.settle_all()
            for batch, error in failed:
                if self._owned.follows_on(batch.owned, batch.expected):
                    await self._one_by_one(batch, error)

    async def _one_by_one(self, batch: PartitionBatch, error: Exception) -> None:
        """A batch whose fold failed: apply it one event per atomic step, parking poison."""
        token = correlation_id.set(f"p{batch.space.partition}@{batch.expected}-{batch.last_offset}")
        try:
            logger.warning(
                "a batch failed to fold (%s); applying it one event at a time", reason_of(error)
            )
            for record in batch.records:
                [plan] = await self._projection.plan([(batch.space, [record])])
                if isinstance(plan, Exception):
                    await self._parking.park(batch.owned.tp, record, f"fold: {reason_of(plan)}")
                    plan = WritePlan()
                if not await self._apply_one(batch, plan, record.offset):
                    return
            if batch.expected != batch.last_offset:  # undecodable records at the end
                await self._apply_one(batch, WritePlan(), batch.last_offset)
        finally:
            correlation_id.reset(token)

    async def _apply_one(self, batch: PartitionBatch, plan: WritePlan, up_to: int) -> bool:
        [outcome] = await self._writer.apply([batch.atomic_step(plan, up_to)])
        return self._outcomes.record(batch, plan, outcome, up_to)

    async def _after_round(self) -> None:
        if self._in_flight and self._caught_up(counting_in_flight=True):
            await self._in_flight.settle_all()  # nothing left to overlap with: settle now
        if not self._pointer.ready and self._caught_up():
            await self._pointer.mark_ready_if_caught_up()
        self._progress.report(self._owned)
        if not self._rebuilding:
            self._commits.start_if_due()

    def _caught_up(self, *, counting_in_flight: bool = False) -> bool:
        """Every owned partition applied up to the log's end (`counting_in_flight`: or will
        have, once the scripts in flight succeed)."""
        return self._owned.all_caught_up(self._in_flight.ahead() if counting_in_flight else None)

    async def _abandon_in_flight(self) -> None:
        """On the way out, or before a retry: let the scripts and the reads finish, whatever
        became of them, without settling (positions are reloaded from Redis anyway); the
        commit to Kafka in flight is cancelled (see `KafkaOffsetCommits.abandon`)."""
        read, self._read = self._read, None
        self._ahead = []
        waits: list[asyncio.Future[Any]] = list(self._in_flight.abandon())
        if read is not None:
            waits.append(read.replies)
        pointer_read = self._pointer.abandon()
        if pointer_read is not None:
            waits.append(pointer_read)
        await asyncio.gather(self._commits.abandon(), *waits, return_exceptions=True)
