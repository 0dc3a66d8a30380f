"""The projector's loop: Kafka partitions in, one atomic Redis write per partition batch out.

Positions live in Redis, beside the read models: on start, on every assignment and when the
served version changes, each partition is sought to the offset stored there. Kafka's
committed offsets are written too, after Redis, only so that standard lag tools work; they
are never read back.

Two modes share this code. *Live* (a consumer group; several instances share partitions)
follows the version pointer. *Rebuild* (every partition assigned by hand) fills one given
version from the start of the log and returns once every partition has caught up.

One round: follow the pointer (live), load the positions of newly owned partitions, fetch
(a share of the batch from each partition), decode (parking the undecodable), send one
pipelined read for every partition's batch, fetch and decode ahead for the next round while
it comes back, then fold each partition's batch and send its atomic script at once.

Rounds overlap: a partition's script runs in Redis while the projector fetches, decodes and
plans what follows (the two costs are of the same order, and Redis works on another core).
Each partition has at most one script in flight. The next batch of that partition is planned
from the offset the script moves to, with what the script writes added to the reads (the
projection's `Carry`), and is sent only once the script has run; if it was fenced, or
failed, the next batch is dropped and the partition reloaded from Redis as after any fence.
Exactly-once is unchanged: each script is still fenced on the offset it starts from.

Ownership of a partition is an object (`_Owned`) made at assignment and dropped at
revocation. A rebalance can happen while a round awaits Redis (aiokafka runs the listener in
its own task): a step finishing for a partition no longer owned, or owned again since, does
not touch the new owner's state, and the offset fence in the script makes the new owner (or
this one, reloading) re-seek to whatever was really applied. The listener does no I/O, so it
cannot fail (aiokafka would log and swallow the error); positions are loaded by the loop,
where a Redis error is retried like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chancery.contract import decode_event
from chancery.keyspace import PartitionSpace
from chancery.observability import correlation_id

from .deadletters import DeadLetters, DeadLetterUnavailableError, Poison
from .metrics import ProjectorMetrics
from .plan import WritePlan
from .projection import Carry, Reading, ReadModelProjection
from .records import LogRecord
from .store import Batch, Outcome, RedisReadModelWriter

logger = logging.getLogger(__name__)

POINTER_CHECK_S = 0.5
KAFKA_COMMIT_EVERY_S = 2.0
RETRY_S = 0.5
PROGRESS_EVERY_S = 0.25
YIELD_EVERY = 200
"""Records decoded between two turns of the event loop (see `_decode`)."""
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)

__all__ = ["LogRecord", "Progress", "Projector"]


@dataclass(frozen=True)
class Progress:
    applied: int  # events done (offsets covered) across partitions
    total: int  # events in the log across partitions (high watermarks)
    rate: float = 0.0  # events per second since the run started
    eta_s: float | None = None  # at that rate, seconds until `total`


@dataclass(eq=False)
class _Owned:
    """A partition this instance owns, from its assignment to its revocation."""

    tp: TopicPartition
    expected: int | None = None  # the offset stored in Redis, as last read or written
    high: int = 0  # the log's end offset, as last seen
    loaded: bool = False  # positions read from Redis and the consumer sought there
    generation: int = 0  # how many times it was (re)loaded: records fetched before are stale

    @property
    def next_offset(self) -> int:
        return 0 if self.expected is None else self.expected + 1


@dataclass
class _Fetched:
    """One partition's records of a fetch, decoded, not yet applied."""

    owned: _Owned
    generation: int
    last_offset: int
    records: list[LogRecord]


@dataclass
class _Sent:
    """A partition's script in flight: its step, plan, task, and what it carries."""

    step: _Step
    plan: WritePlan
    task: asyncio.Task[list[Outcome]]
    carry: Carry
    started: float


@dataclass
class _Step:
    """One partition's batch within a round."""

    owned: _Owned
    space: PartitionSpace
    expected: int | None
    last_offset: int  # the last offset fetched: the step covers everything up to it
    high: int
    records: list[LogRecord] = field(default_factory=list)


class Projector:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        writer: RedisReadModelWriter,
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
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._topic = topic
        self._max_batch = max_batch
        self._fetch_timeout_ms = fetch_timeout_ms
        self._rebuilding = False
        self._version = 0
        self._partitions = partitions
        self._on_progress = on_progress
        self._owned: dict[int, _Owned] = {}
        self._last_pointer_check = 0.0
        self._check_pointer_now = False
        self._pointer_read: asyncio.Future[int | None] | None = None  # sent, not yet looked at
        self._last_commit = 0.0
        self._commit: asyncio.Task[None] | None = None  # Kafka's offsets, being committed
        self._last_progress = 0.0
        self._started = time.monotonic()
        self._applied_at_start: int | None = None
        self._ready = False
        self._pending: dict[int, _Sent] = {}  # partition -> its script in flight
        self._reading: Reading | None = None  # a read sent, its fold not started
        self._next: list[_Fetched] = []  # fetched and decoded ahead, for the next round

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
        """This instance's view: version, readiness, and per owned partition its lag."""
        partitions = []
        for p in sorted(self._owned):
            owned = self._owned[p]
            high = self._high(owned)
            partitions.append(
                {
                    "partition": p,
                    "applied_offset": owned.expected,
                    "high_watermark": high,
                    "lag": max(0, high - owned.next_offset),
                    "loaded": owned.loaded,
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
        """Join the group; positions are loaded by the loop once partitions are assigned."""
        await self._use_version(await self._writer.ensure_active_version(self._partitions))
        self._consumer.subscribe([self._topic], listener=self.listener())

    async def start_rebuild(self, version: int) -> None:
        """Take every partition by hand and fill `version`, from its stored offsets."""
        self._version = version
        self._rebuilding = True
        tps = [TopicPartition(self._topic, p) for p in range(self._partitions)]
        self._consumer.assign(tps)
        self.assigned(tps)

    async def run(self, stop: asyncio.Event) -> None:
        """Apply batches until `stop` is set (live) or every partition caught up (rebuild)."""
        self._started = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    await self._round()
                    if self._rebuilding and self._all_caught_up(counting_in_flight=True):
                        await self._settle_all()
                except REDIS_ERRORS as exc:
                    logger.warning("Redis unavailable (%r); retrying from the stored offsets", exc)
                    await self._retry_later()
                except DeadLetterUnavailableError as exc:
                    logger.warning("%s; retrying from the stored offsets", exc)
                    await self._retry_later()
                if self._rebuilding and self._all_caught_up():
                    self._report_progress(force=True)
                    return
        finally:
            await self._abandon_in_flight()

    async def _retry_later(self) -> None:
        await self._abandon_in_flight()
        await asyncio.sleep(RETRY_S)
        self._unload_all()
        self._check_pointer_now = not self._rebuilding

    # --- ownership (called by the rebalance listener: no I/O here) --------------------------------

    def assigned(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            if tp.topic == self._topic:
                self._owned[tp.partition] = _Owned(tp)

    def revoked(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            if tp.topic == self._topic:
                self._owned.pop(tp.partition, None)

    def _unload_all(self) -> None:
        for owned in self._owned.values():
            owned.loaded = False

    def _still(self, owned: _Owned) -> bool:
        return self._owned.get(owned.tp.partition) is owned

    # --- positions -------------------------------------------------------------------------------

    async def _load_pending(self) -> None:
        """Seek each newly owned (or reset) partition to the offset stored in Redis."""
        pending = [o for o in self._owned.values() if not o.loaded]
        if not pending:
            return
        try:
            ends = await self._consumer.end_offsets([o.tp for o in pending])
        except KafkaError as exc:
            logger.warning("cannot read the log's end offsets yet (%r); retrying", exc)
            return
        spaces = [PartitionSpace(self._version, o.tp.partition) for o in pending]
        stored = await self._writer.stored_offsets(spaces)
        for owned, space, offset in zip(pending, spaces, stored, strict=True):
            if not self._still(owned):
                continue
            try:
                if offset is None:
                    await self._consumer.seek_to_beginning(owned.tp)
                else:
                    self._consumer.seek(owned.tp, offset + 1)
            except IllegalStateError:
                continue  # revoked in the meantime
            owned.expected = offset
            owned.high = int(ends.get(owned.tp, 0))
            owned.loaded = True
            owned.generation += 1
            if owned.next_offset >= owned.high:
                await self._writer.mark_caught_up(space, owned.high)
            logger.info(
                "partition %d: version %d, resuming after offset %s of %d",
                owned.tp.partition,
                self._version,
                offset,
                owned.high,
            )

    def _pointer_moved(self) -> bool:
        """True when the pointer must be followed now: at once when a check is urgent, else
        once a read of it, sent when the check fell due, has come back naming another version.

        The read is collected in a later round rather than awaited: waiting for it meant
        draining every script in flight first (a version change unloads every partition),
        a stall of one round's Redis work every `POINTER_CHECK_S` to learn that nothing moved.
        """
        if self._check_pointer_now:
            return True
        read = self._pointer_read
        if read is None:
            if time.monotonic() - self._last_pointer_check >= POINTER_CHECK_S:
                self._last_pointer_check = time.monotonic()
                self._pointer_read = asyncio.ensure_future(self._writer.active_version())
            return False
        if not read.done():
            return False
        self._pointer_read = None
        return read.result() != self._version  # Redis's error, raised: retried as any other

    async def _follow_pointer(self) -> None:
        if self._pointer_read is not None:  # sent before the writes settled: not used
            await asyncio.gather(self._pointer_read, return_exceptions=True)
            self._pointer_read = None
        self._last_pointer_check = time.monotonic()
        self._check_pointer_now = False
        active = await self._writer.active_version()
        if active == self._version:
            return
        if active is None:
            logger.warning("the read-model pointer is gone (Redis emptied?): rebuilding")
        else:
            logger.info("the served version moved from %d to %d", self._version, active)
        version = await self._writer.ensure_active_version(self._partitions, above=self._version)
        await self._use_version(version)
        self._unload_all()

    async def _use_version(self, version: int) -> None:
        self._version = version
        info = await self._writer.version_info(version)
        self._ready = info is not None and info.state == "ready"
        self._metrics.version.set(version)

    # --- one round -------------------------------------------------------------------------------

    async def _round(self) -> None:
        self._settle_done()
        if not self._rebuilding and self._pointer_moved():
            await self._settle_all()  # a version change unloads every partition
            await self._follow_pointer()
        if any(not o.loaded for o in self._owned.values()):
            await self._settle_all()  # positions are read once their writes landed
            await self._load_pending()
        prepared, self._next = self._next, []
        if not prepared:
            prepared = await self._prepare(await self._fetch())
        self._settle_done()
        steps = self._steps(prepared)
        if steps:
            reading = await self._read(steps)
            # While Redis answers (after the scripts ahead of the read), take what the
            # consumer already holds for the next round: fetched and decoded, not waited for.
            self._next = await self._prepare(await self._fetch(wait=False))
            await self._plan_and_apply(steps, reading)
        await self._after_round()

    async def _fetch(self, *, wait: bool = True) -> dict[TopicPartition, list[object]]:
        """Up to `max_batch` records, shared among the owned partitions that have some
        (`wait`: for up to the fetch timeout when there are none yet).

        The consumer hands out one partition's buffer before the next, so a plain fetch is
        one partition's batch most of the time. A round of every partition's share lets
        Redis run one partition's script while the next partition's batch is folded."""
        owned = [o.tp for o in self._owned.values() if o.loaded]
        share = max(1, self._max_batch // max(1, len(owned)))
        fetched: dict[TopicPartition, list[object]] = await self._consumer.getmany(
            timeout_ms=self._fetch_timeout_ms if wait else 0, max_records=share
        )
        if fetched:
            for tp in owned:
                if tp not in fetched:
                    fetched.update(await self._consumer.getmany(tp, max_records=share))
        return fetched

    async def _prepare(self, fetched: dict[TopicPartition, list[object]]) -> list[_Fetched]:
        """Decode each partition's records (parking the undecodable ones)."""
        prepared = []
        for tp, raw in fetched.items():
            owned = self._owned.get(tp.partition)
            if owned is None or not owned.loaded or owned.tp != tp or not raw:
                continue  # revoked, or fetched before it was sought to its stored offset
            records = await self._decode(tp, raw)
            prepared.append(_Fetched(owned, owned.generation, _offset(raw[-1]), records))
        return prepared

    def _steps(self, prepared: list[_Fetched]) -> list[_Step]:
        """The batches to apply: records of a partition revoked, or reloaded (re-sought)
        since they were fetched, are dropped; they will be fetched again from where Redis
        says. Records at or below the stored offset are dropped too."""
        steps = []
        for f in prepared:
            owned = f.owned
            if not self._still(owned) or not owned.loaded or owned.generation != f.generation:
                continue
            sent = self._pending.get(owned.tp.partition)
            # from where the script in flight leaves it, if it succeeds (checked before send)
            expected = sent.step.last_offset if sent is not None else owned.expected
            if expected is not None and f.last_offset <= expected:
                continue
            records = f.records
            if expected is not None and records and records[0].offset <= expected:
                records = [r for r in records if r.offset > expected]
            steps.append(
                _Step(
                    owned=owned,
                    space=PartitionSpace(self._version, owned.tp.partition),
                    expected=expected,
                    last_offset=f.last_offset,
                    high=max(self._high(owned), f.last_offset + 1),
                    records=records,
                )
            )
        return steps

    async def _read(self, steps: list[_Step]) -> Reading:
        """Send the read of the round's batches (with what the scripts in flight write)."""
        partitions = [s.owned.tp.partition for s in steps]
        if any((sent := self._pending.get(p)) and sent.carry.trips for p in partitions):
            await self._settle_all()  # trip reads must see those writes: no carry for them
        carried = [sent.carry if (sent := self._pending.get(p)) else None for p in partitions]
        reading = self._reading = self._projection.read(
            [(s.space, s.records) for s in steps], carried
        )
        await asyncio.sleep(0)  # let it go out before the CPU-bound work that follows
        return reading

    async def _plan_and_apply(self, steps: list[_Step], reading: Reading) -> None:
        """Fold the round's batches and start each one's script as soon as it is planned
        (Redis runs it while the next is folded); a batch whose fold failed is applied one
        event at a time, after the others (not overlapped: it is rare)."""
        duplicates = self._projection.duplicates
        partitions = [s.owned.tp.partition for s in steps]
        failed: list[tuple[_Step, Exception]] = []
        self._reading = None
        async with contextlib.aclosing(self._projection.plans(reading)) as planned:
            async for i, plan, carry in planned:
                step = steps[i]
                if isinstance(plan, Exception):
                    failed.append((step, plan))
                    continue
                assert carry is not None
                if not await self._ready_to_send(step):
                    continue
                batch = Batch(step.space, step.expected, step.last_offset, step.high, plan)
                task = asyncio.create_task(self._writer.apply([batch]), name="projector-apply")
                self._pending[partitions[i]] = _Sent(step, plan, task, carry, time.perf_counter())
                await asyncio.sleep(0)  # let the task send the script before we go on
        self._metrics.duplicates.inc(self._projection.duplicates - duplicates)
        if failed:
            await self._settle_all()
            for step, error in failed:
                owned = step.owned
                if self._still(owned) and owned.loaded and owned.expected == step.expected:
                    await self._one_by_one(step, error)

    async def _ready_to_send(self, step: _Step) -> bool:
        """Settle the partition's script in flight; True when `step` still follows on
        from what is applied (else it is dropped: the partition is being reloaded)."""
        sent = self._pending.pop(step.owned.tp.partition, None)
        if sent is not None:
            self._settle_sent(sent, await sent.task)
        owned = step.owned
        return self._still(owned) and owned.loaded and owned.expected == step.expected

    def _settle_sent(self, sent: _Sent, outcomes: list[Outcome]) -> None:
        [outcome] = outcomes
        self._settle(sent.step, sent.plan, outcome, sent.step.last_offset)
        self._metrics.batch_seconds.observe(time.perf_counter() - sent.started)

    def _settle_done(self) -> None:
        """Record the outcome of every script that has finished (Redis's error, raised)."""
        for p, sent in list(self._pending.items()):
            if sent.task.done():
                del self._pending[p]
                self._settle_sent(sent, sent.task.result())

    async def _settle_all(self) -> None:
        """Wait for every script in flight and record its outcome (the first error of one,
        Redis's, is raised once every outcome is known)."""
        pending, self._pending = self._pending, {}
        results = await asyncio.gather(
            *(sent.task for sent in pending.values()), return_exceptions=True
        )
        error: BaseException | None = None
        for sent, result in zip(pending.values(), results, strict=True):
            if isinstance(result, BaseException):
                error = error or result
            else:
                self._settle_sent(sent, result)
        if error is not None:
            raise error

    async def _abandon_in_flight(self) -> None:
        """On the way out, or before a retry: let the scripts and the reads finish, whatever
        became of them, without settling (positions are reloaded from Redis anyway). A commit
        to Kafka is cancelled instead: it is informational only, and aiokafka retries one for
        as long as the broker is away, which would hold up a stop or a retry."""
        pending, self._pending = self._pending, {}
        reading, self._reading = self._reading, None
        commit, self._commit = self._commit, None
        self._next = []
        waits: list[asyncio.Future[Any]] = [sent.task for sent in pending.values()]
        if reading is not None:
            waits.append(reading.replies)
        if self._pointer_read is not None:
            waits.append(self._pointer_read)
            self._pointer_read = None
        if commit is not None:
            commit.cancel()
            waits.append(commit)
        await asyncio.gather(*waits, return_exceptions=True)
        if commit is not None and not commit.cancelled() and commit.exception() is not None:
            # `_start_commit` would have raised it in the next round; there is none now.
            logger.warning("Kafka offset commit failed: %r", commit.exception())

    async def _decode(self, tp: TopicPartition, raw: Sequence[object]) -> list[LogRecord]:
        """The records decoded, the undecodable parked. Every `YIELD_EVERY` records the loop
        lets the event loop run: the scripts in flight are megabytes that the transport
        writes only then, and Redis can start a script only once it has all of it."""
        records: list[LogRecord] = []
        append = records.append
        p = tp.partition
        for start in range(0, len(raw), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            for r in raw[start : start + YIELD_EVERY]:
                value: bytes | None = r.value  # type: ignore[attr-defined]
                if value is None:
                    await self._park(tp, r, "undecodable: a record without a value")
                    continue
                try:
                    event = decode_event(value)
                except ValueError as exc:  # ValidationError, and bytes that are not UTF-8
                    await self._park(tp, r, f"undecodable: {_reason(exc)}")
                    continue
                append(
                    LogRecord(
                        p,
                        r.offset,  # type: ignore[attr-defined]
                        r.key,  # type: ignore[attr-defined]
                        value,
                        event,
                        event.key,
                        r.headers or (),  # type: ignore[attr-defined]
                    )
                )
        return records

    def _settle(self, step: _Step, plan: WritePlan, outcome: Outcome, new_offset: int) -> bool:
        """Record a step's outcome; False when it was fenced."""
        owned = step.owned
        p = owned.tp.partition
        if not outcome.applied:
            self._metrics.fenced.inc()
            logger.warning(
                "partition %d: stored offset is %s, not %s: another writer moved it; reloading",
                p,
                outcome.stored,
                step.expected,
            )
            if self._still(owned):
                owned.loaded = False  # reloaded (and re-sought) at the start of the next round
            if outcome.stored is None and step.expected is not None:
                self._check_pointer_now = True  # this version's keys are gone
            return False
        if outcome.stream_skipped:
            self._metrics.stream_skipped.inc(outcome.stream_skipped)
            logger.error(
                "partition %d: %d stream entries skipped: the stream is ahead of the stored "
                "offset (was the offset key removed by hand?)",
                p,
                outcome.stream_skipped,
            )
        if self._still(owned) and owned.loaded:
            owned.expected = new_offset
            owned.high = max(owned.high, step.high)
        step.expected = new_offset
        self._metrics.applied.inc(plan.events)
        self._metrics.applied_offset.labels(str(p)).set(new_offset)
        self._metrics.lag.labels(str(p)).set(max(0, step.high - new_offset - 1))
        return True

    async def _one_by_one(self, step: _Step, error: Exception) -> None:
        """A batch whose fold failed: apply it one event per atomic step, parking poison."""
        token = correlation_id.set(f"p{step.space.partition}@{step.expected}-{step.last_offset}")
        try:
            logger.warning(
                "a batch failed to fold (%s); applying it one event at a time", _reason(error)
            )
            for record in step.records:
                [result] = await self._projection.plan([(step.space, [record])])
                if isinstance(result, Exception):
                    await self._park_record(step.owned.tp, record, f"fold: {_reason(result)}")
                    result = WritePlan()
                if not await self._apply_one(step, result, record.offset):
                    return
            if step.expected != step.last_offset:  # undecodable records at the end
                await self._apply_one(step, WritePlan(), step.last_offset)
        finally:
            correlation_id.reset(token)

    async def _apply_one(self, step: _Step, plan: WritePlan, new_offset: int) -> bool:
        batch = Batch(step.space, step.expected, new_offset, step.high, plan)
        [outcome] = await self._writer.apply([batch])
        return self._settle(step, plan, outcome, new_offset)

    async def _park(self, tp: TopicPartition, record: object, reason: str) -> None:
        await self._park_poison(
            Poison(
                tp.topic,
                tp.partition,
                _offset(record),
                record.key,  # type: ignore[attr-defined]
                record.value,  # type: ignore[attr-defined]
                reason,
                tuple(record.headers or ()),  # type: ignore[attr-defined]
            )
        )

    async def _park_record(self, tp: TopicPartition, record: LogRecord, reason: str) -> None:
        await self._park_poison(
            Poison(
                tp.topic,
                tp.partition,
                record.offset,
                record.key,
                record.value,
                reason,
                tuple(record.headers),
            )
        )

    async def _park_poison(self, poison: Poison) -> None:
        await self._dead_letters.park(poison)
        self._metrics.dead_letters.labels(poison.kind).inc()

    # --- after each round ------------------------------------------------------------------------

    async def _after_round(self) -> None:
        if self._pending and self._all_caught_up(counting_in_flight=True):
            await self._settle_all()  # nothing left to overlap with: settle now, not later
        if not self._ready and self._all_caught_up():
            self._ready = await self._writer.mark_ready_if_caught_up(
                self._version, self._partitions
            )
        self._report_progress()
        now = time.monotonic()
        if not self._rebuilding and now - self._last_commit >= KAFKA_COMMIT_EVERY_S:
            self._start_commit(now)

    def _high(self, owned: _Owned) -> int:
        try:
            seen = self._consumer.highwater(owned.tp)
        except IllegalStateError:
            seen = None
        return max(owned.high, seen or 0)

    def _all_caught_up(self, *, counting_in_flight: bool = False) -> bool:
        """Every owned partition applied up to the log's end (`counting_in_flight`: or will
        have, once the scripts in flight succeed)."""
        owned = list(self._owned.values())
        ahead: dict[int, int] = {}
        if counting_in_flight:
            ahead = {
                id(sent.step.owned): sent.step.last_offset + 1 for sent in self._pending.values()
            }
        return bool(owned) and all(
            o.loaded and max(o.next_offset, ahead.get(id(o), 0)) >= self._high(o) for o in owned
        )

    def _report_progress(self, *, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        owned = list(self._owned.values())
        applied = sum(o.next_offset for o in owned if o.loaded)
        total = sum(self._high(o) for o in owned)
        if self._applied_at_start is None:
            self._applied_at_start = applied
            self._started = now
        elapsed = now - self._started
        rate = (applied - self._applied_at_start) / elapsed if elapsed > 0 else 0.0
        eta = (total - applied) / rate if rate > 0 else None
        self._on_progress(Progress(applied=applied, total=total, rate=rate, eta_s=eta))

    def _start_commit(self, now: float) -> None:
        """Commit to Kafka in the background, one commit at a time: awaiting the broker's
        answer in the loop stalled it, and the scripts behind it, every KAFKA_COMMIT_EVERY_S."""
        commit = self._commit
        if commit is not None:
            if not commit.done():
                return  # the last one is still on its way: this one waits for the next round
            commit.result()  # an error `_commit_to_kafka` does not expect: raised, as before
        self._last_commit = now
        self._commit = asyncio.create_task(self._commit_to_kafka(), name="projector-commit")

    async def _commit_to_kafka(self) -> None:
        offsets = {
            o.tp: o.expected + 1
            for o in self._owned.values()
            if o.loaded and o.expected is not None
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # informational only: Redis holds the real positions
            logger.debug("Kafka offset commit skipped: %r", exc)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._projector.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._projector.assigned(sorted(assigned))


def _offset(record: object) -> int:
    return int(record.offset)  # type: ignore[attr-defined]


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        return f"{exc.error_count()} error(s), first at {loc}: {first['msg']}"
    return f"{type(exc).__name__}: {exc}"
