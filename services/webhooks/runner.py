"""One subscription's delivery: the log read from its position, each chosen event sent.

The runner reads the topic with a Kafka consumer of its own, seeked to the subscription's
stored position (every partition), and decodes each record to filter it. A chosen event goes
into its subject's queue (the subject is the record's partition key: what keeps its order in
the log). One subject's events are delivered one at a time, in log order; up to
`concurrency` subjects at once; a subject that has delivered one event gives its turn to a
waiting subject, so a busy subject does not hold back the others. Reading pauses while
`max_buffered` events wait.

Each event is tried until it is delivered: backoff with jitter between attempts (or the
receiver's Retry-After). When one event has failed `max_attempts` times, or the
subscription has failed for `max_failing_s` with no delivery in between, or the receiver
answers 410 Gone, the subscription is paused with its last error; nothing is skipped, and a
resume starts again from the stored position.

Positions (see positions.py), attempts and failures are written every `FLUSH_S` through the
store's fenced `commit`. A commit refused (the lease was lost) stops the runner at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiokafka import TopicPartition
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base

from chancery.contract import Event, decode_event
from chancery.keyspace import HookStateField
from chancery.subscriptions import (
    DeliveryAttempt,
    Subscription,
    SubscriptionState,
    secret_bytes,
)
from services.platform.retrying import ServerDelayOrBackoff, TryAgainLater

from .messages import WebhookMessage, message_of
from .positions import DeliveryPositions
from .sender import Answer
from .store import Progress, SubscriptionStore

logger = logging.getLogger(__name__)

FLUSH_S = 0.1
FETCH_TIMEOUT_MS = 200
TAKEN_BETWEEN_YIELDS = 50


class ConsumedRecord(Protocol):
    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


class LogReader(Protocol):
    """The calls the runner makes to its Kafka consumer (aiokafka's answers them)."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[ConsumedRecord]]: ...


class Send(Protocol):
    async def __call__(self, url: str, message: WebhookMessage, key: bytes) -> Answer: ...


@dataclass(frozen=True)
class RunnerSettings:
    concurrency: int
    max_buffered: int
    max_attempts: int
    max_failing_s: float
    backoff_first_s: float
    backoff_max_s: float
    attempts_kept: int


@dataclass
class _Pending:
    partition: int
    offset: int
    event: Event
    message: WebhookMessage


@dataclass(frozen=True)
class _AttemptMade:
    """An attempt as made; its `DeliveryAttempt` is built only if it is written."""

    at: float
    pending: _Pending
    attempt: int
    answer: Answer

    def attempt_record(self) -> DeliveryAttempt:
        event, answer = self.pending.event, self.answer
        return DeliveryAttempt(
            at=datetime.fromtimestamp(self.at, UTC),
            webhook_id=self.pending.message.webhook_id,
            event_id=event.id,
            event_source=event.source,
            event_type=event.type,
            partition=self.pending.partition,
            offset=self.pending.offset,
            attempt=self.attempt,
            status=answer.status,
            latency_ms=answer.latency_ms,
            error=answer.error,
            outcome="delivered" if answer.delivered else "failed",
        )


class LeaseLostError(Exception):
    """Another worker holds the subscription now: stop, write nothing more."""


class _GiveUpError(Exception):
    def __init__(self, reason: str, last_error: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.last_error = last_error


class _Gone(Exception):
    pass


class _FailingTooLong(stop_base):
    def __init__(self, runner: SubscriptionRunner) -> None:
        self._runner = runner

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._runner.failing_for() >= self._runner.settings.max_failing_s


@dataclass
class RunnerStatus:
    """What `chancery deliver`'s /status shows of a runner."""

    subscription: str
    position: dict[int, int]
    buffered: int
    subjects_active: int
    delivered: int = 0
    failed_attempts: int = 0
    failing_since: str | None = None
    last_error: str | None = None
    state: str = "running"


class SubscriptionRunner:
    def __init__(
        self,
        subscription: Subscription,
        *,
        start: Mapping[int, int],
        failing_since: datetime | None,
        reader: LogReader,
        send: Send,
        store: SubscriptionStore,
        token: str,
        settings: RunnerSettings,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.subscription = subscription
        self.settings = settings
        self._filter = subscription.filters.event_filter()
        self._key = secret_bytes(subscription.secret)
        self._reader = reader
        self._send = send
        self._store = store
        self._token = token
        self._clock = clock
        self._sleep = sleep
        self._positions = DeliveryPositions(start)
        self._queues: dict[tuple[int, bytes], deque[_Pending]] = {}
        self._waiting: deque[tuple[int, bytes]] = deque()
        self._active: dict[tuple[int, bytes], asyncio.Task[None]] = {}
        self._buffered = 0
        self._room = asyncio.Event()
        self._stop = asyncio.Event()
        # The newest attempts not written yet: the deliveries log keeps `attempts_kept`, so
        # older ones would be trimmed as soon as written (and pile up while Redis is away).
        self._attempts: deque[_AttemptMade] = deque(maxlen=settings.attempts_kept)
        self._status_fields: dict[str, str] = {}
        self._failing_since = failing_since.timestamp() if failing_since else None
        self._last_error: str | None = None
        self._gave_up: _GiveUpError | None = None
        self._delivered = 0
        self._failed = 0

    # --- the outside -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop soon (paused, deleted, the lease lost, the worker stopping)."""
        self._stop.set()

    @property
    def gave_up(self) -> str | None:
        return self._gave_up.reason if self._gave_up else None

    def failing_for(self) -> float:
        return 0.0 if self._failing_since is None else self._clock() - self._failing_since

    def status(self) -> RunnerStatus:
        return RunnerStatus(
            subscription=self.subscription.id,
            position=self._positions.current(),
            buffered=self._buffered,
            subjects_active=len(self._active),
            delivered=self._delivered,
            failed_attempts=self._failed,
            failing_since=_iso(self._failing_since),
            last_error=self._last_error,
        )

    async def run(self) -> None:
        """Deliver until stopped, paused by failure, or the lease is lost (LeaseLostError)."""
        reading = asyncio.create_task(self._read(), name=f"read-{self.subscription.id}")
        flushing = asyncio.create_task(self._flush_often(), name=f"flush-{self.subscription.id}")
        stopping = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {reading, flushing, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopping:
                    task.result()
        finally:
            for task in (reading, flushing, stopping, *self._active.values()):
                task.cancel()
            await asyncio.gather(
                reading, flushing, stopping, *self._active.values(), return_exceptions=True
            )
            self._active.clear()
        if self._gave_up is not None:
            self._status_fields.update(
                {
                    HookStateField.STATE: SubscriptionState.PAUSED.value,
                    HookStateField.REASON: self._gave_up.reason,
                    HookStateField.LAST_ERROR: self._gave_up.last_error,
                    HookStateField.CHANGED: datetime.now(UTC).isoformat(),
                }
            )
            logger.warning(
                "subscription %s paused: %s (%s)",
                self.subscription.id,
                self._gave_up.reason,
                self._gave_up.last_error,
            )
        await self.flush()

    # --- reading ---------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            while self._buffered >= self.settings.max_buffered:
                self._room.clear()
                await self._room.wait()
            fetched = await self._reader.getmany(
                timeout_ms=FETCH_TIMEOUT_MS,
                max_records=self.settings.max_buffered - self._buffered,
            )
            taken = 0
            for tp, records in fetched.items():
                for record in records:
                    self._take(tp.partition, record)
                    taken += 1
                    if taken % TAKEN_BETWEEN_YIELDS == 0:
                        # A large fetch (catching up) is decoded a slice at a time, so the
                        # answers of deliveries in flight are not kept waiting behind it.
                        await asyncio.sleep(0)

    def _take(self, partition: int, record: ConsumedRecord) -> None:
        event = None
        if record.value is not None:
            try:
                event = decode_event(record.value)
            except ValueError:
                logger.warning(
                    "subscription %s: the record at %d:%d is not an event; passed over",
                    self.subscription.id,
                    partition,
                    record.offset,
                )
        if event is None or not self._filter.accepts_event(event):
            self._positions.passed(partition, record.offset)
            return
        assert record.value is not None
        message = message_of(record.value, event.key, self.subscription.mode)
        self._positions.opened(partition, record.offset)
        self._buffered += 1
        subject = (partition, record.key or b"")
        queue = self._queues.setdefault(subject, deque())
        queue.append(_Pending(partition, record.offset, event, message))
        if len(queue) == 1 and subject not in self._active:
            self._waiting.append(subject)
            self._start_waiting()

    # --- delivering ------------------------------------------------------------------------

    def _start_waiting(self) -> None:
        while self._waiting and len(self._active) < self.settings.concurrency:
            subject = self._waiting.popleft()
            self._active[subject] = asyncio.create_task(self._drain(subject))

    async def _drain(self, subject: tuple[int, bytes]) -> None:
        queue = self._queues[subject]
        try:
            while queue:
                pending = queue[0]
                await self._deliver(pending)
                queue.popleft()
                self._positions.delivered(pending.partition, pending.offset)
                self._buffered -= 1
                self._room.set()
                if self._waiting:
                    break  # the turn goes to a subject that waits
        except _GiveUpError as exc:
            self._gave_up = exc
            self._stop.set()
            return
        del self._active[subject]
        if queue:
            self._waiting.append(subject)
        else:
            del self._queues[subject]
        self._start_waiting()

    async def _deliver(self, pending: _Pending) -> None:
        # Nearly every event goes on its first attempt: tenacity's machinery (a few objects
        # and calls per attempt) is only set up once one has failed.
        answer = await self._attempt(pending, 1)
        if answer.delivered:
            return
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TryAgainLater),
            wait=ServerDelayOrBackoff(
                first_s=self.settings.backoff_first_s, longest_s=self.settings.backoff_max_s
            ),
            stop=stop_after_attempt(self.settings.max_attempts) | _FailingTooLong(self),
            sleep=self._sleep,
            reraise=True,
        )
        attempt = 1
        try:
            async for trying in retrying:
                with trying:
                    if trying.retry_state.attempt_number > 1:  # the first one was made above
                        attempt += 1
                        answer = await self._attempt(pending, attempt)
                    self._raise_unless_delivered(answer)
        except _Gone as exc:
            raise _GiveUpError(
                "the receiver answered 410 Gone: it wants no more events", str(exc)
            ) from None
        except TryAgainLater as exc:
            if attempt >= self.settings.max_attempts:
                webhook = pending.message.webhook_id
                reason = f"{attempt} attempts at one event failed (webhook-id {webhook})"
            else:
                reason = f"failing for {self.failing_for() / 3600:.2f} h with no delivery"
            raise _GiveUpError(reason, exc.reason) from None

    async def _attempt(self, pending: _Pending, attempt: int) -> Answer:
        answer = await self._send(self.subscription.url, pending.message, self._key)
        self._record(pending, attempt, answer)
        return answer

    def _raise_unless_delivered(self, answer: Answer) -> None:
        if answer.delivered:
            return
        if answer.gone:
            raise _Gone(answer.error or "410 Gone")
        after = answer.retry_after_s
        raise TryAgainLater(
            answer.error or "failed",
            after_s=None if after is None else min(after, self.settings.backoff_max_s),
        )

    def _record(self, pending: _Pending, attempt: int, answer: Answer) -> None:
        self._attempts.append(_AttemptMade(time.time(), pending, attempt, answer))
        if answer.delivered:
            self._delivered += 1
            if self._failing_since is not None:
                self._failing_since = None
                self._status_fields[HookStateField.FAILING_SINCE] = ""
            return
        self._failed += 1
        self._last_error = answer.error
        self._status_fields[HookStateField.LAST_ERROR] = answer.error or ""
        if self._failing_since is None:
            self._failing_since = self._clock()
            self._status_fields[HookStateField.FAILING_SINCE] = _iso(self._failing_since) or ""

    # --- writing progress ------------------------------------------------------------------

    async def _flush_often(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        """Write what moved since the last flush; raises LeaseLostError if the lease is gone."""
        attempts = [made.attempt_record() for made in self._attempts]
        progress = Progress(self._positions.take_changes(), attempts, self._status_fields)
        if not progress:
            return
        unsent_attempts = self._attempts
        self._attempts = deque(maxlen=self.settings.attempts_kept)
        self._status_fields = {}
        try:
            committed = await self._store.commit(
                self.subscription.id, self._token, progress, kept=self.settings.attempts_kept
            )
        except BaseException:
            # Not written: written with the next flush (positions only move forward).
            self._positions.unsent(progress.positions)
            self._attempts = deque(
                [*unsent_attempts, *self._attempts], maxlen=self.settings.attempts_kept
            )
            self._status_fields = {**progress.status_fields, **self._status_fields}
            raise
        if not committed:
            raise LeaseLostError(self.subscription.id)


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()
