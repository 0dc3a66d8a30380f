"""The ingest use case: from validated events to durably logged ones, exactly once per identity.

All-or-nothing means: a request whose events are not all valid, or whose identities
conflict, publishes nothing. Once every event is valid, each is published at most once per
identity. If Kafka fails part-way the request gets 503; the events Kafka did acknowledge
are remembered, so the client's retry of the same request appends only what is missing
and then gets the full answer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from chancery.contract import (
    Event,
    content_digest,
    encode_event,
    event_key,
    partition_key,
    retraction_target,
    stamp,
)
from chancery.keyspace import IdempotencyRecord
from chancery.positions import Position

from .idempotency import Claim, IdempotencyStore, IdempotencyUnavailableError
from .publisher import EventPublisher, NotWritten, OutgoingRecord, Written

logger = logging.getLogger(__name__)

PENDING_POLL_S = 0.05


@dataclass(frozen=True)
class AcceptedEvent:
    id: str
    source: str
    position: Position
    duplicate: bool  # True when it had been accepted before and was not appended again


@dataclass(frozen=True)
class Accepted:
    events: list[AcceptedEvent]
    position: Position

    @property
    def appended(self) -> int:
        return sum(1 for e in self.events if not e.duplicate)


class IngestError(Exception):
    """Base of the failures the HTTP layer maps to a status (see errors.py)."""


@dataclass
class ConflictError(IngestError):
    """The same (source, id) was given with different content."""

    conflicts: list[dict[str, object]]


@dataclass
class UnknownTargetError(IngestError):
    """A retraction names an event Chancery does not know."""

    problems: list[dict[str, object]]


@dataclass
class UnavailableError(IngestError):
    """The log could not take the events now; nothing unacknowledged was reported written."""

    reason: str


class IngestService:
    def __init__(
        self,
        publisher: EventPublisher,
        idempotency: IdempotencyStore,
        *,
        clock: Callable[[], datetime],
        publish_timeout_s: float,
    ) -> None:
        self._publisher = publisher
        self._idempotency = idempotency
        self._clock = clock
        self._timeout_s = publish_timeout_s

    @property
    def topic(self) -> str:
        return self._publisher.topic

    async def ingest(self, events: Sequence[Event]) -> Accepted:
        try:
            return await self._ingest(events)
        except IdempotencyUnavailableError as exc:
            raise UnavailableError(f"idempotency store unavailable: {exc}") from exc

    async def _ingest(self, events: Sequence[Event]) -> Accepted:
        keys = [event_key(e.source, e.id) for e in events]
        digests = [content_digest(e) for e in events]

        # 1. Identities repeated inside the request: same content is one event, else a conflict.
        first_index: dict[str, int] = {}
        conflicts: list[dict[str, object]] = []
        for i, (key, dig) in enumerate(zip(keys, digests, strict=True)):
            j = first_index.setdefault(key, i)
            if j != i and digests[j] != dig:
                conflicts.append(_conflict(i, events[i], f"differs from event {j} of this request"))
        if conflicts:
            raise ConflictError(conflicts)
        unique = sorted(first_index.values())

        # 2. Partition keys: retractions go where their target went.
        pkeys = await self._partition_keys(events, keys, unique, first_index)

        # 3. Claim every identity; known ones answer from memory, conflicting ones abort.
        nonce = secrets.token_hex(8)
        claims = [
            Claim(
                keys[i],
                IdempotencyRecord(
                    digest=digests[i], partition_key=pkeys[i], state="pending", claim=nonce
                ),
            )
            for i in unique
        ]
        existing = await self._idempotency.claim(claims)
        known: dict[str, IdempotencyRecord] = {}
        ours: list[tuple[int, Claim]] = []
        waiting: list[int] = []
        for i, claim, record in zip(unique, claims, existing, strict=True):
            if record is None:
                ours.append((i, claim))
            elif record.digest != claim.record.digest:
                conflicts.append(
                    _conflict(i, events[i], "was accepted before with different content")
                )
            elif record.state == "done":
                known[keys[i]] = record
            else:
                waiting.append(i)
        if not conflicts and waiting:
            done = await self._wait_for_others([keys[i] for i in waiting])
            for i in waiting:
                record = done.get(keys[i])
                if record is None:
                    await self._idempotency.release([c for _, c in ours])
                    raise UnavailableError(
                        f"event {events[i].id!r} is being written by another request"
                    )
                known[keys[i]] = record
        if conflicts:
            await self._idempotency.release([c for _, c in ours])
            raise ConflictError(conflicts)

        # 4. Publish what is new, then remember what Kafka acknowledged.
        now = self._clock()
        records = [
            OutgoingRecord(
                key=pkeys[i].encode(),
                value=encode_event(stamp(events[i], recorded_at=now, partition_key=pkeys[i])),
            )
            for i, _ in ours
        ]
        results = (
            await self._publisher.publish(records, timeout_s=self._timeout_s) if records else []
        )
        completed: dict[str, IdempotencyRecord] = {}
        failed: list[Claim] = []
        failure = ""
        for (_, claim), result in zip(ours, results, strict=True):
            if isinstance(result, Written):
                completed[claim.event_key] = claim.record.model_copy(
                    update={
                        "state": "done",
                        "claim": None,
                        "partition": result.partition,
                        "offset": result.offset,
                    }
                )
            else:
                assert isinstance(result, NotWritten)
                failed.append(claim)
                failure = failure or result.reason
        try:
            await self._idempotency.complete(completed)
            await self._idempotency.release(failed)
        except IdempotencyUnavailableError as exc:
            # The events are in the log; only our memory of them is lost. A retry may then
            # append a second copy, which the projector drops (it dedupes by identity).
            logger.warning("could not record idempotency outcome: %s", exc)
        if failed:
            logger.warning(
                "published %d of %d events; failing the request",
                len(completed),
                len(records),
                extra={"event_ids": [events[i].id for i, _ in ours][:20]},
            )
            raise UnavailableError(f"the event log did not accept the events: {failure}")
        known.update(completed)

        accepted = [
            AcceptedEvent(
                id=e.id,
                source=e.source,
                position=self._position_of(known[keys[i]]),
                duplicate=keys[i] not in completed or first_index[keys[i]] != i,
            )
            for i, e in enumerate(events)
        ]
        covering = Position(self.topic)
        for a in accepted:
            covering = covering.merge(a.position)
        return Accepted(accepted, covering)

    def _position_of(self, record: IdempotencyRecord) -> Position:
        assert record.partition is not None
        assert record.offset is not None
        return Position.at(self.topic, record.partition, record.offset)

    async def _partition_keys(
        self,
        events: Sequence[Event],
        keys: Sequence[str],
        unique: Sequence[int],
        first_index: dict[str, int],
    ) -> list[str]:
        pkeys: list[str | None] = [partition_key(e) for e in events]
        targets: dict[int, str] = {}
        for i in unique:
            target = retraction_target(events[i])
            if target is not None:
                targets[i] = event_key(*target)
        if not targets:
            return [k or "" for k in pkeys]
        # A target in this same request goes first and shares its key.
        pending = {i: t for i, t in targets.items() if t not in first_index}
        for i, t in targets.items():
            if t in first_index:
                pkeys[i] = pkeys[first_index[t]]
        found = await self._idempotency.lookup(list(pending.values())) if pending else []
        problems: list[dict[str, object]] = []
        for (i, _), record in zip(pending.items(), found, strict=True):
            if record is None or record.state != "done":
                problems.append(
                    {
                        "index": i,
                        "id": events[i].id,
                        "field": "data.target",
                        "message": "retracts an event Chancery has no record of "
                        "(unknown, or older than the idempotency window)",
                    }
                )
            else:
                pkeys[i] = record.partition_key
        if problems:
            raise UnknownTargetError(problems)
        for i in unique:
            if pkeys[i] is None:
                raise AssertionError(f"no partition key for event {i}")
        return [pkeys[first_index[keys[i]]] or "" for i in range(len(events))]

    async def _wait_for_others(self, event_keys: list[str]) -> dict[str, IdempotencyRecord]:
        """Another request holds these claims: wait (bounded) for it to finish."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        done: dict[str, IdempotencyRecord] = {}
        remaining = list(event_keys)
        while remaining and loop.time() < deadline:
            await asyncio.sleep(PENDING_POLL_S)
            records = await self._idempotency.lookup(remaining)
            for key, record in zip(list(remaining), records, strict=True):
                if record is None:
                    remaining.remove(key)  # released: the other request failed
                elif record.state == "done":
                    done[key] = record
                    remaining.remove(key)
        return done


def _conflict(index: int, event: Event, why: str) -> dict[str, object]:
    return {
        "index": index,
        "id": event.id,
        "source": event.source,
        "message": f"an event with this source and id {why}",
    }
