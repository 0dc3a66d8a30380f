"""Overlapped rounds: each partition's batch, its script in flight, and what became of it.

A partition's script runs in Redis while the projector fetches, decodes and folds what
follows (Redis works on another core). Each partition has at most one script in flight. Its
next batch is planned from the offset the script moves to, with what the script writes added
to that batch's reads (the projection's `InFlightWrites`), and is sent only once the script
has run: if it was fenced, or failed, the next batch is dropped (`Ownership.follows_on` no
longer holds) and the partition reloaded from Redis, as after any fence. Exactly-once rests on
each script alone: it is fenced on the offset it starts from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from chancery.keyspace import PartitionSpace

from .metrics import ProjectorMetrics
from .ownership import OwnedPartition, Ownership
from .plan import WritePlan
from .projection import InFlightWrites
from .records import LogRecord
from .store import Batch, Outcome, ReadModelWriter
from .version_pointer import VersionPointer

logger = logging.getLogger(__name__)


@dataclass
class PartitionBatch:
    """One partition's batch within a round: its records, and the offsets it goes between."""

    owned: OwnedPartition
    space: PartitionSpace
    expected: int | None  # the stored offset it follows on from (None: nothing applied yet)
    last_offset: int  # the last offset fetched: the batch covers everything up to it
    high: int
    records: list[LogRecord] = field(default_factory=list)

    def atomic_step(self, plan: WritePlan, up_to: int | None = None) -> Batch:
        """The writer's atomic step: `plan`, and the offset moved from `expected` to `up_to`
        (by default, the whole batch)."""
        last = self.last_offset if up_to is None else up_to
        return Batch(self.space, self.expected, last, self.high, plan)


@dataclass
class ScriptInFlight:
    """A partition's script sent to Redis and not yet settled."""

    batch: PartitionBatch
    plan: WritePlan
    task: asyncio.Task[list[Outcome]]
    writes: InFlightWrites  # what the script writes, for the partition's next batch's reads
    started: float


class BatchOutcomes:
    """Records what became of a partition's atomic step in the partition's state and the
    metrics; a fenced step has the partition reloaded."""

    def __init__(
        self, ownership: Ownership, pointer: VersionPointer, metrics: ProjectorMetrics
    ) -> None:
        self._ownership = ownership
        self._pointer = pointer
        self._metrics = metrics

    def record(
        self, batch: PartitionBatch, plan: WritePlan, outcome: Outcome, new_offset: int
    ) -> bool:
        """False when the step was fenced."""
        owned = batch.owned
        p = owned.partition
        metrics = self._metrics
        if not outcome.applied:
            metrics.fenced.inc()
            logger.warning(
                "partition %d: stored offset is %s, not %s: another writer moved it; reloading",
                p,
                outcome.stored,
                batch.expected,
            )
            if self._ownership.holds(owned):
                owned.loaded = False  # reloaded (and re-sought) at the start of the next round
            if outcome.stored is None and batch.expected is not None:
                self._pointer.check_now()  # this version's keys are gone
            return False
        if outcome.stream_skipped:
            metrics.stream_skipped.inc(outcome.stream_skipped)
            logger.error(
                "partition %d: %d stream entries skipped: the stream is ahead of the stored "
                "offset (was the offset key removed by hand?)",
                p,
                outcome.stream_skipped,
            )
        if self._ownership.holds(owned) and owned.loaded:
            owned.expected = new_offset
            owned.high = max(owned.high, batch.high)
        batch.expected = new_offset
        metrics.applied.inc(plan.events)
        metrics.applied_offset.labels(str(p)).set(new_offset)
        metrics.lag.labels(str(p)).set(max(0, batch.high - new_offset - 1))
        return True


class ScriptsInFlight:
    """Each partition's script in flight (at most one), settled as each one ends."""

    def __init__(
        self, writer: ReadModelWriter, outcomes: BatchOutcomes, metrics: ProjectorMetrics
    ) -> None:
        self._writer = writer
        self._outcomes = outcomes
        self._metrics = metrics
        self._scripts: dict[int, ScriptInFlight] = {}

    def __bool__(self) -> bool:
        return bool(self._scripts)

    def get(self, partition: int) -> ScriptInFlight | None:
        return self._scripts.get(partition)

    def ahead(self) -> dict[OwnedPartition, int]:
        """The next offset of each partition with a script in flight, once that succeeds."""
        return {s.batch.owned: s.batch.last_offset + 1 for s in self._scripts.values()}

    def send(self, batch: PartitionBatch, plan: WritePlan, writes: InFlightWrites) -> None:
        """Start the batch's script (the partition has none in flight: see `settle`)."""
        step = batch.atomic_step(plan)
        task = asyncio.create_task(self._writer.apply([step]), name="projector-apply")
        self._scripts[batch.owned.partition] = ScriptInFlight(
            batch, plan, task, writes, time.perf_counter()
        )

    async def settle(self, partition: int) -> None:
        """Wait for the partition's script, if any, and record its outcome."""
        sent = self._scripts.pop(partition, None)
        if sent is not None:
            self._record(sent, await sent.task)

    def settle_finished(self) -> None:
        """Record the outcome of every script that has ended (Redis's error, raised)."""
        for p, sent in list(self._scripts.items()):
            if sent.task.done():
                del self._scripts[p]
                self._record(sent, sent.task.result())

    async def settle_all(self) -> None:
        """Wait for every script and record its outcome (the first error of one, Redis's, is
        raised once every outcome is known)."""
        scripts, self._scripts = self._scripts, {}
        results = await asyncio.gather(
            *(sent.task for sent in scripts.values()), return_exceptions=True
        )
        error: BaseException | None = None
        for sent, result in zip(scripts.values(), results, strict=True):
            if isinstance(result, BaseException):
                error = error or result
            else:
                self._record(sent, result)
        if error is not None:
            raise error

    def abandon(self) -> list[asyncio.Task[list[Outcome]]]:
        """Every script in flight, forgotten here unsettled (the caller lets them end)."""
        scripts, self._scripts = self._scripts, {}
        return [sent.task for sent in scripts.values()]

    def _record(self, sent: ScriptInFlight, outcomes: list[Outcome]) -> None:
        [outcome] = outcomes
        self._outcomes.record(sent.batch, sent.plan, outcome, sent.batch.last_offset)
        self._metrics.batch_seconds.observe(time.perf_counter() - sent.started)
