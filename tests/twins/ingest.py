"""Ingest's three ports, in memory: the event log, the idempotency store, the target index.

Each keeps what the real adapter would, in dicts, and can be switched off (`available=False`)
to stand for Kafka or Redis being down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from chancery.contract import Event, event_key, partition_for
from chancery.keyspace import IdempotencyRecord
from services.ingest.idempotency import Claim, IdempotencyUnavailableError
from services.ingest.publisher import (
    NotWritten,
    OutgoingRecord,
    PublishResult,
    Unknown,
    Written,
)
from services.ingest.targets import ReadModelsUnavailableError


@dataclass
class InMemoryEventPublisher:
    """The twin for unit tests: keeps records per partition.

    `available=False` refuses every record (Kafka down); `hold=True` leaves every record
    `Unknown` until `release_held()` writes them (a send stuck while Kafka is unreachable);
    `fail_after=n` writes only the first n records of the next publish (a partial failure);
    `delay_s` makes each publish take that long (to overlap concurrent requests).
    """

    topic: str = "chancery.events"
    partitions: int = 6
    available: bool = True
    hold: bool = False
    fail_after: int | None = None
    delay_s: float = 0.0
    log: dict[int, list[OutgoingRecord]] = field(default_factory=dict)
    calls: int = 0
    _held: list[tuple[OutgoingRecord, asyncio.Future[Written | NotWritten]]] = field(
        default_factory=list
    )

    async def publish(
        self, records: Sequence[OutgoingRecord], *, timeout_s: float
    ) -> list[PublishResult]:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if not self.available:
            return [NotWritten("broker unavailable")] * len(records)
        results: list[PublishResult] = []
        for n, record in enumerate(records):
            if self.fail_after is not None and n >= self.fail_after:
                results.append(NotWritten("broker refused the record"))
            elif self.hold:
                future: asyncio.Future[Written | NotWritten] = (
                    asyncio.get_running_loop().create_future()
                )
                self._held.append((record, future))
                results.append(Unknown("held", asyncio.shield(future)))
            else:
                results.append(self._append(record))
        self.fail_after = None
        return results

    def _append(self, record: OutgoingRecord) -> Written:
        partition = partition_for(record.key, self.partitions)  # where Kafka puts it
        entries = self.log.setdefault(partition, [])
        entries.append(record)
        return Written(partition, len(entries) - 1)

    def release_held(self, *, written: bool = True) -> None:
        """Resolve every held record: written to the log, or failed."""
        held, self._held = self._held, []
        for record, future in held:
            future.set_result(self._append(record) if written else NotWritten("failed late"))

    async def is_ready(self) -> tuple[bool, str]:
        return self.available, "in memory" if self.available else "switched off"

    def records(self) -> list[OutgoingRecord]:
        return [r for p in sorted(self.log) for r in self.log[p]]


@dataclass
class InMemoryIdempotencyStore:
    """The twin for unit tests (no expiry)."""

    records: dict[str, IdempotencyRecord] = field(default_factory=dict)
    available: bool = True
    extended: int = 0
    rounds: int = 0  # calls of complete_then_claim (the group commit's rounds)

    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        self._check()
        out: list[IdempotencyRecord | None] = []
        for c in claims:
            existing = self.records.get(c.event_key)
            if existing is None:
                self.records[c.event_key] = c.record
            out.append(existing)
        return out

    async def complete(self, done: Sequence[tuple[Claim, IdempotencyRecord]]) -> None:
        self._check()
        for claim, record in done:
            if self.records.get(claim.event_key) in (None, claim.record):
                self.records[claim.event_key] = record

    async def complete_then_claim(
        self, done: Sequence[tuple[Claim, IdempotencyRecord]], claims: Sequence[Claim]
    ) -> list[IdempotencyRecord | None]:
        self.rounds += 1
        await self.complete(done)
        return await self.claim(claims)

    async def release(self, claims: Sequence[Claim]) -> None:
        self._check()
        for c in claims:
            if self.records.get(c.event_key) == c.record:
                del self.records[c.event_key]

    async def extend(self, claims: Sequence[Claim]) -> None:
        self._check()
        self.extended += sum(1 for c in claims if self.records.get(c.event_key) == c.record)

    async def lookup(self, event_keys: Sequence[str]) -> list[IdempotencyRecord | None]:
        self._check()
        return [self.records.get(k) for k in event_keys]

    async def is_ready(self) -> tuple[bool, str]:
        return self.available, "in memory"

    def _check(self) -> None:
        if not self.available:
            raise IdempotencyUnavailableError("in-memory idempotency store switched off")


@dataclass
class InMemoryTargetIndex:
    """The twin for unit tests: the events the read models would hold, by event_key."""

    events: dict[str, Event] = field(default_factory=dict)
    available: bool = True

    def add(self, event: Event) -> None:
        self.events[event.key] = event

    async def lookup(self, targets: Sequence[tuple[str, str]]) -> list[Event | None]:
        if not self.available:
            raise ReadModelsUnavailableError("in-memory read models switched off")
        return [self.events.get(event_key(*ref)) for ref in targets]
