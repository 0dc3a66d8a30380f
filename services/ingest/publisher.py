"""Publishing events to the log: the port and its Kafka adapter (twin: tests/twins/ingest.py).

`publish` sends a whole request's records and returns, per record, one of three outcomes:

- `Written(partition, offset)`: Kafka acknowledged it (acks=all, idempotent producer);
- `NotWritten(reason)`: it was never handed to Kafka, or Kafka refused it for good;
- `Unknown(reason, outcome)`: it was handed to the producer but not acknowledged within the
  bound. The idempotent producer keeps retrying such a record (aiokafka never expires a
  batch when idempotence is on), so it may still land. `outcome` resolves, later, to the
  record's `Written` or `NotWritten`; the caller keeps its idempotency claim until then, so a
  retry of the request waits for that outcome instead of appending a second copy.

It never raises for a record: the caller decides what a partial failure means.

While a partition is known not to accept writes (a publish to it timed out, and a probe has
not yet reached its leader again), `publish` answers `NotWritten` at once for its records
instead of queueing more behind the ones already stuck: requests get their 503 quickly, and
memory does not grow with the length of an outage. Every partition led by the same broker
is known stuck with it, so on one broker an outage stops every partition at once; on a
cluster, a dead leader stops only its partitions until another broker takes them over (the
controller fences a broker that died without warning after its session timeout), while the
others keep accepting. A background probe clears that state on its own.
A producer whose sender died of a fatal error (such as OutOfOrderSequenceNumber) is
replaced: aiokafka fails the sends pending then, and refuses every later one, with that
error, so `publish` sees it in its own sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
)
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from chancery.contract import RECORD_CONTENT_TYPE
from services.platform.kafka import key_partition
from services.platform.retrying import ServerDelayOrBackoff, failure_of

logger = logging.getLogger(__name__)

# Errors after which the producer's id and sequence numbers are no good: only a new
# producer (a new producer id) can write again.
PRODUCER_FATAL = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)
CONTENT_TYPE_HEADER = ("content-type", RECORD_CONTENT_TYPE.encode())
# Below this many records for one partition, `send()` per record shares the producer's open
# batch with concurrent requests; at or above it, one batch of our own is cheaper per record.
OWN_BATCH_MIN_RECORDS = 16
FIRST_CONNECT_BACKOFF_S = 0.2
MAX_CONNECT_BACKOFF_S = 5.0


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    key: bytes
    value: bytes


class Written(NamedTuple):  # one per record of a request: a tuple is the cheapest to make
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class NotWritten:
    reason: str


@dataclass(frozen=True, slots=True)
class Unknown:
    reason: str
    outcome: Awaitable[Written | NotWritten] = field(repr=False, compare=False)


PublishResult = Written | NotWritten | Unknown


class EventPublisher(Protocol):
    topic: str

    async def publish(
        self, records: Sequence[OutgoingRecord], *, timeout_s: float
    ) -> list[PublishResult]: ...

    async def is_ready(self) -> tuple[bool, str]: ...


def default_partition(key: bytes, partitions: int) -> int:
    """The partition of `key` (`chancery.contract.partition_for`: Kafka's and aiokafka's
    default partitioner), as the producer's own partitioner picks it (`by_contract`)."""
    return key_partition(key, partitions)


class KafkaEventPublisher:
    """An idempotent aiokafka producer that connects, reconnects and is replaced on its own.

    Ingest must start and answer (503) while Kafka is down, so the producer is started by a
    background task that retries with backoff instead of in the lifespan's critical path.
    `factory` makes a new, unstarted producer (the same settings every time). `check` runs
    once, when a producer first connects: a reason it returns (the topic does not meet the
    settings) refuses every publish from then on (503, and /readyz says why).
    """

    def __init__(
        self,
        factory: Callable[[], AIOKafkaProducer],
        topic: str,
        *,
        probe_interval_s: float = 0.5,
        stop_timeout_s: float = 5.0,
        check: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.topic = topic
        self._factory = factory
        self._check = check
        self._refused: str | None = None
        self._first_attempt = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._connector: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._probe_interval_s = probe_interval_s
        self._stop_timeout_s = stop_timeout_s
        self._down: str | None = "not connected to Kafka yet"
        # Partitions whose leader did not acknowledge a publish in time, until a probe
        # reaches their (new) leader: their records are refused at once (503).
        self._stuck: dict[int, str] = {}
        self._all_stuck: str | None = None  # no metadata to tell which: every partition
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect(), name="kafka-producer-connect")

    async def first_attempt(self, timeout_s: float) -> str | None:
        """Wait (at most `timeout_s`) for the first attempt to connect, and the check after
        it; the reason the log is refused, if it is (None: connected, or not yet)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._first_attempt.wait()
        return self._refused

    async def _connect(self) -> None:
        """Start a new producer, retrying with backoff until one starts or we are closed."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((KafkaError, OSError)),
            wait=ServerDelayOrBackoff(
                first_s=FIRST_CONNECT_BACKOFF_S, longest_s=MAX_CONNECT_BACKOFF_S
            ),
            stop=lambda _: self._closed,
            before_sleep=self._connect_failed,
            retry_error_callback=lambda _: None,  # closed while retrying: nothing to start
        )
        async for attempt in retrying:
            with attempt:
                producer = self._factory()
                try:
                    await producer.start()
                except (KafkaError, OSError) as exc:
                    self._down = f"cannot reach Kafka: {exc or type(exc).__name__}"
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                await self._check_once()
                self._producer = producer
                self._down = None
                logger.info("Kafka producer connected")
                self._first_attempt.set()

    async def _check_once(self) -> None:
        check, self._check = self._check, None
        if check is None:
            return
        try:
            refused = await check()
        except Exception as exc:  # noqa: BLE001 - a check that could not run refuses nothing
            logger.warning("could not check the event log's topic: %r", exc)
            return
        if refused is not None:
            self._refused = refused
            logger.error("refusing to publish to the event log: %s", refused)

    def _connect_failed(self, retry_state: RetryCallState) -> None:
        self._first_attempt.set()
        logger.warning(
            "Kafka producer start failed, retrying in %.1fs: %s",
            retry_state.upcoming_sleep,
            failure_of(retry_state),
        )

    async def stop(self) -> None:
        self._closed = True
        for task in (self._connector, self._prober):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._producer is not None:
            await self._stop_producer(self._producer)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    async def _stop_producer(self, producer: AIOKafkaProducer) -> None:
        """Flush and close, bounded: with Kafka down a flush would wait for ever."""
        try:
            async with asyncio.timeout(self._stop_timeout_s):
                await producer.stop()
        except TimeoutError:
            logger.warning(
                "Kafka producer did not flush within %.0fs; unacknowledged records are "
                "abandoned (their requests were answered 503)",
                self._stop_timeout_s,
            )
        except KafkaError as exc:
            logger.warning("Kafka producer stopped with an error: %s", exc)

    def _replace_producer(self, why: str) -> None:
        """The producer is dead (its sender task ended): retire it and connect a new one."""
        old, self._producer = self._producer, None
        self._down = f"Kafka producer failed ({why}); reconnecting"
        logger.error("Kafka producer failed, replacing it: %s", why)
        if old is not None:
            task = asyncio.create_task(self._stop_producer(old), name="kafka-producer-retire")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        if not self._closed and (self._connector is None or self._connector.done()):
            self._connector = asyncio.create_task(self._connect(), name="kafka-producer-connect")

    # --- stuck partitions / probe ---------------------------------------------------------

    async def _mark_stuck(self, producer: AIOKafkaProducer, keys: Sequence[bytes]) -> None:
        """Refuse, until a probe reaches their leader again, the partitions of `keys` (whose
        records were not acknowledged in time) and every other partition that broker leads.
        On one broker that is every partition; on a cluster, the others keep accepting."""
        try:
            async with asyncio.timeout(2.0):
                partitions = sorted(await producer.partitions_for(self.topic))
        except (TimeoutError, KafkaError):
            partitions = []
        if not partitions:  # no metadata either: every partition, as far as we know
            self._stuck_all("a publish was not acknowledged in time; no metadata")
            return
        late = {partitions[default_partition(key, len(partitions))] for key in keys}
        cluster = producer.client.cluster
        leaders = {cluster.leader_for_partition(_tp(self.topic, p)) for p in late}
        stuck = late | {
            p for p in partitions if cluster.leader_for_partition(_tp(self.topic, p)) in leaders
        }
        new = sorted(stuck - self._stuck.keys())
        for p in new:
            self._stuck[p] = f"partition {p} did not acknowledge a publish in time (its leader)"
        if new:
            logger.warning(
                "partitions %s of %s are not acknowledging writes (leader %s): answering 503 "
                "for their events until their leader answers",
                new,
                self.topic,
                sorted(str(leader) for leader in leaders),
            )
        self._start_probe()

    def _stuck_all(self, reason: str) -> None:
        self._all_stuck = reason
        logger.warning("Kafka is unreachable, answering 503 until it is back: %s", reason)
        self._start_probe()

    def _start_probe(self) -> None:
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe(), name="kafka-probe")

    async def _probe(self) -> None:
        while not self._closed and (self._stuck or self._all_stuck is not None):
            await asyncio.sleep(self._probe_interval_s)
            producer = self._producer
            if producer is None:
                continue
            with contextlib.suppress(KafkaError, TimeoutError):
                async with asyncio.timeout(2.0):  # a new leader is news only in new metadata
                    await producer.client.force_metadata_update()
            reachable = await self._reachable_partitions(producer, timeout_s=2.0)
            back = sorted(set(self._stuck) & reachable)
            for p in back:
                del self._stuck[p]
            if back:
                logger.info("partitions %s of %s accept writes again", back, self.topic)
            ok, detail = await self._leaders_reachable(producer, timeout_s=2.0)
            if ok and self._all_stuck is not None:
                logger.info("Kafka is reachable again: %s", detail)
                self._all_stuck = None

    async def _reachable_partitions(
        self, producer: AIOKafkaProducer, *, timeout_s: float
    ) -> set[int]:
        """The partitions whose leader the producer can reach now."""
        client = producer.client
        reachable: set[int] = set()
        try:
            async with asyncio.timeout(timeout_s):
                for p in await producer.partitions_for(self.topic):
                    leader = client.cluster.leader_for_partition(_tp(self.topic, p))
                    if leader is not None and leader >= 0 and await client.ready(leader):
                        reachable.add(p)
        except (TimeoutError, KafkaError):
            pass
        return reachable

    async def _leaders_reachable(
        self, producer: AIOKafkaProducer, *, timeout_s: float
    ) -> tuple[bool, str]:
        client = producer.client
        try:
            async with asyncio.timeout(timeout_s):
                partitions = await producer.partitions_for(self.topic)
                if not partitions:
                    return False, f"topic {self.topic!r} does not exist"
                leaders = {
                    client.cluster.leader_for_partition(_tp(self.topic, p)) for p in partitions
                }
                if None in leaders or -1 in leaders:
                    return False, "a partition has no leader"
                for node in leaders:
                    if not await client.ready(node):
                        return False, f"Kafka broker {node} is not reachable"
        except TimeoutError:
            return False, "Kafka did not answer in time"
        except KafkaError as exc:
            return False, f"Kafka metadata unavailable: {exc or type(exc).__name__}"
        return True, f"topic {self.topic!r} has {len(partitions)} partitions, leaders reachable"

    # --- publishing ----------------------------------------------------------------------

    async def publish(
        self, records: Sequence[OutgoingRecord], *, timeout_s: float
    ) -> list[PublishResult]:
        producer = self._producer
        down = self._refused or self._down or self._all_stuck
        if producer is None or down is not None:
            return [NotWritten(down or "Kafka producer not connected")] * len(records)
        # Per record, the future of its send and its index in that future's batch.
        pending: list[tuple[asyncio.Future[Any], int] | None] = [None] * len(records)
        fatal: BaseException | None = None
        results: list[PublishResult] = [NotWritten("not sent")] * len(records)
        sendable = await self._not_stuck(producer, records, results)
        try:
            async with asyncio.timeout(timeout_s):
                await self._enqueue(producer, records, pending, sendable)
                if futures := _futures_of(pending):
                    await asyncio.wait(futures)
        except TimeoutError:
            logger.warning("publish of %d records timed out after %.1fs", len(records), timeout_s)
        except KafkaError as exc:
            # A producer whose sender died refuses every send with the sender's error.
            fatal = exc if isinstance(exc, PRODUCER_FATAL) else None
            logger.warning("publish failed: %s", exc)
        unknown: list[bytes] = []
        for i, sent in enumerate(pending):
            if sent is None:
                continue  # never handed to the producer: NotWritten (see `results`)
            future, index = sent
            if not future.done():
                unknown.append(records[i].key)
                results[i] = Unknown("not acknowledged in time", _settled(future, index))
            else:
                results[i] = _result_of(future, index)
        # Once per send, not per record: the records of a batch share its future.
        fatal = fatal or next(
            (
                f.exception()
                for f in _futures_of(pending)
                if f.done() and not f.cancelled() and isinstance(f.exception(), PRODUCER_FATAL)
            ),
            None,
        )
        if fatal is not None and self._producer is producer:
            self._replace_producer(f"{type(fatal).__name__}: {fatal}")
        if unknown:
            await self._mark_stuck(producer, unknown)
        return results

    async def _not_stuck(
        self,
        producer: AIOKafkaProducer,
        records: Sequence[OutgoingRecord],
        results: list[PublishResult],
    ) -> Sequence[int]:
        """The indexes of the records whose partition accepts writes; each of the others is
        given its partition's reason (`results`) and is not handed to the producer, so that it
        gets its 503 at once instead of queueing behind the records already stuck."""
        if not self._stuck:
            return range(len(records))
        partitions = sorted(await producer.partitions_for(self.topic))
        sendable: list[int] = []
        for i, record in enumerate(records):
            reason = self._stuck.get(partitions[default_partition(record.key, len(partitions))])
            if reason is None:
                sendable.append(i)
            else:
                results[i] = NotWritten(reason)
        return sendable

    async def _enqueue(
        self,
        producer: AIOKafkaProducer,
        records: Sequence[OutgoingRecord],
        pending: list[tuple[asyncio.Future[Any], int] | None],
        sendable: Sequence[int],
    ) -> None:
        """Hand the `sendable` records to the producer; fills `pending` as it goes."""
        headers = [CONTENT_TYPE_HEADER]
        if len(sendable) < OWN_BATCH_MIN_RECORDS:
            for i in sendable:
                record = records[i]
                future = await producer.send(
                    self.topic, value=record.value, key=record.key, headers=headers
                )
                pending[i] = (future, -1)
            return
        partitions = sorted(await producer.partitions_for(self.topic))
        by_partition: dict[int, list[int]] = {}
        for i in sendable:
            record = records[i]
            p = partitions[default_partition(record.key, len(partitions))]
            by_partition.setdefault(p, []).append(i)
        for partition, indexes in by_partition.items():
            if len(indexes) < OWN_BATCH_MIN_RECORDS:
                for i in indexes:
                    future = await producer.send(
                        self.topic,
                        value=records[i].value,
                        key=records[i].key,
                        partition=partition,
                        headers=headers,
                    )
                    pending[i] = (future, -1)
                continue
            batch = producer.create_batch()
            members: list[int] = []
            for i in indexes:
                record = records[i]
                if _append(batch, record, headers):
                    members.append(i)
                    continue
                await self._send_batch(producer, batch, partition, members, pending)
                batch, members = producer.create_batch(), []
                if not _append(batch, record, headers):
                    raise KafkaError(f"a record of {len(record.value)} bytes does not fit a batch")
                members.append(i)
            await self._send_batch(producer, batch, partition, members, pending)

    async def _send_batch(
        self,
        producer: AIOKafkaProducer,
        batch: Any,
        partition: int,
        members: list[int],
        pending: list[tuple[asyncio.Future[Any], int] | None],
    ) -> None:
        batch.close()
        future = await producer.send_batch(batch, self.topic, partition=partition)
        for position, i in enumerate(members):
            pending[i] = (future, position)

    async def is_ready(self) -> tuple[bool, str]:
        if self._refused is not None:
            return False, f"the event log is refused: {self._refused}"
        producer = self._producer
        if producer is None:
            return False, self._down or "Kafka producer not connected"
        ok, detail = await self._leaders_reachable(producer, timeout_s=2.0)
        if not ok:
            return False, detail
        if self._down is not None or self._all_stuck is not None:
            return False, f"{self._down or self._all_stuck} (probing)"
        if self._stuck:
            return False, f"partitions {sorted(self._stuck)} not acknowledging writes (probing)"
        return True, detail


def _append(batch: Any, record: OutgoingRecord, headers: list[tuple[str, bytes]]) -> bool:
    metadata = batch.append(key=record.key, value=record.value, timestamp=None, headers=headers)
    return metadata is not None


def _tp(topic: str, partition: int) -> Any:
    from aiokafka.structs import TopicPartition

    return TopicPartition(topic, partition)


def _futures_of(
    pending: Sequence[tuple[asyncio.Future[Any], int] | None],
) -> list[asyncio.Future[Any]]:
    """The distinct futures of the records handed to the producer (one per send or batch)."""
    return list({id(p[0]): p[0] for p in pending if p is not None}.values())


def _result_of(future: asyncio.Future[Any], index: int) -> Written | NotWritten:
    """The outcome of a finished send: `index` is the record's place in its own batch, or -1
    for a record sent with `send()` (whose metadata carries its own offset)."""
    if future.cancelled():
        return NotWritten("cancelled")
    error = future.exception()
    if error is not None:
        return NotWritten(f"{type(error).__name__}: {error}")
    metadata = future.result()
    offset = metadata.offset if index < 0 else metadata.offset + index
    return Written(metadata.partition, offset)


async def _settled(future: asyncio.Future[Any], index: int) -> Written | NotWritten:
    with contextlib.suppress(Exception):
        await asyncio.shield(future)
    return _result_of(future, index)
