"""The ingest use case: from validated events to durably logged ones, once per identity.

All-or-nothing means: a request whose events are not all valid, or whose identities
conflict, publishes nothing. Once every event is valid, each is published at most once per
identity. If Kafka fails part-way the request gets 503; the events Kafka did acknowledge
are remembered, so the client's retry of the same request appends only what is missing
and then gets the full answer.

Two requests carrying the same event: the first to claim it publishes it; the second waits
(bounded by the publish timeout) for that outcome and answers from it, or re-claims the
event if the first gave up. An event whose send has an unknown outcome (Kafka did not
answer in time) keeps its claim until the producer knows; a retry meanwhile waits and then
gets 503, never a second copy in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from chancery.contract import (
    Event,
    EventRetracted,
    digest_of,
    event_key,
    recorded_json,
    stamp_encoded,
)
from chancery.contract.plain import Incoming
from chancery.keyspace import IdempotencyRecord
from chancery.positions import Position

from .idempotency import Claim, IdempotencyStore, IdempotencyUnavailableError
from .publisher import (
    EventPublisher,
    NotWritten,
    OutgoingRecord,
    PublishResult,
    Unknown,
    Written,
)
from .targets import ReadModelsUnavailableError, TargetIndex

logger = logging.getLogger(__name__)

PENDING_POLL_S = 0.05
LOGGED_IDS = 50  # at most this many event ids in one log record


class AcceptedEvent(NamedTuple):
    id: str
    source: str
    position: str  # the token of Position.at(topic, partition, offset)
    duplicate: bool  # True when it had been accepted before and was not appended again


@dataclass(frozen=True)
class Accepted:
    events: list[AcceptedEvent]
    position: Position
    appended: int  # how many of `events` this request appended (the others are duplicates)


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
        pending_ttl_s: float | None = None,
        observe_publish: Callable[[float], None] | None = None,
        targets: TargetIndex | None = None,
    ) -> None:
        self._publisher = publisher
        self._idempotency = idempotency
        self._targets = targets  # where targets older than the idempotency window are found
        self._clock = clock
        self._timeout_s = publish_timeout_s
        # Claims of unknown outcome are extended three times per pending lifetime.
        self._extend_every_s = (pending_ttl_s or 2 * publish_timeout_s) / 3
        self._observe_publish = observe_publish
        self._settling: set[asyncio.Task[None]] = set()
        self._position_prefix = Position(publisher.topic).token()

    @property
    def topic(self) -> str:
        return self._publisher.topic

    @property
    def settling(self) -> int:
        """Requests whose events still have an unknown outcome."""
        return len(self._settling)

    async def ingest(self, events: Sequence[Incoming]) -> Accepted:
        try:
            return await self._ingest(events)
        except IdempotencyUnavailableError as exc:
            raise UnavailableError(f"idempotency store unavailable: {exc}") from exc

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Let unknown outcomes settle (bounded), then stop waiting for them."""
        if self._settling:
            _, still = await asyncio.wait(self._settling, timeout=timeout_s)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)

    async def _ingest(self, events: Sequence[Incoming]) -> Accepted:
        # Each event's identity, partition key (None for a retraction: resolved below) and one
        # encoding: its digest now, its stamped bytes once it is ours to publish.
        keys = [e.key for e in events]
        unstamped = [e.unstamped for e in events]
        digests = [digest_of(raw) for raw in unstamped]
        pkeys: list[str | None] = [e.partition_key for e in events]

        # 1. Identities repeated inside the request: same content is one event, else a conflict.
        first_index: dict[str, int] = {}
        conflicts: list[dict[str, object]] = []
        for i, key in enumerate(keys):
            j = first_index.setdefault(key, i)
            if j != i and digests[j] != digests[i]:
                conflicts.append(_conflict(i, events[i], f"differs from event {j} of this request"))
        if conflicts:
            raise ConflictError(conflicts)
        unique = sorted(first_index.values())

        # 2. Partition keys: retractions go where their target went.
        resolved = await self._partition_keys(events, keys, pkeys, unique, first_index)

        # 3. Claim every identity; known ones answer from memory, conflicting ones abort.
        nonce = secrets.token_hex(8)
        pending = IdempotencyRecord.pending
        claims = {i: Claim.of(keys[i], pending(digests[i], resolved[i], nonce)) for i in unique}
        known, ours = await self._claim(events, unique, claims)

        # 4. Publish what is new, then remember what Kafka acknowledged.
        recorded = recorded_json(self._clock())
        records = [
            OutgoingRecord(
                key=resolved[i].encode(),
                value=stamp_encoded(unstamped[i], recorded=recorded, partition_key=resolved[i]),
            )
            for i in ours
        ]
        results: list[PublishResult] = []
        if records:
            started = time.perf_counter()
            results = await self._publisher.publish(records, timeout_s=self._timeout_s)
            if self._observe_publish is not None:
                self._observe_publish(time.perf_counter() - started)
        completed: list[tuple[Claim, IdempotencyRecord]] = []
        failed: list[Claim] = []
        unknown: list[tuple[Claim, Unknown]] = []
        failure = ""
        for i, result in zip(ours, results, strict=True):
            claim = claims[i]
            if isinstance(result, Written):
                record = claim.record.done(result.partition, result.offset)
                completed.append((claim, record))
                known[claim.event_key] = record
            elif isinstance(result, Unknown):
                unknown.append((claim, result))
                failure = failure or result.reason
            else:
                failed.append(claim)
                failure = failure or result.reason
        try:
            await self._idempotency.complete(completed)
            await self._idempotency.release(failed)
        except IdempotencyUnavailableError as exc:
            # The events are in the log; only our memory of them is lost. A retry may then
            # append a second copy, which the projector drops (it dedupes by identity).
            logger.warning("could not record the outcome of a publish: %s", exc)
        if unknown:
            self._settle_later(unknown)
        if failed or unknown:
            logger.warning(
                "published %d of %d events (%d outcome unknown); answering 503: %s",
                len(completed),
                len(records),
                len(unknown),
                failure,
                extra={"event_ids": [events[i].id for i in ours][:LOGGED_IDS]},
            )
            raise UnavailableError(f"the event log did not accept the events: {failure}")

        # 5. The answer: every event's position; those this request did not append (known
        # before, or repeated in the request) are duplicates.
        appended = set(ours)
        accepted: list[AcceptedEvent] = []
        covering: dict[int, int] = {}
        prefix = self._position_prefix  # "<topic>@": the token of one entry follows
        for i, e in enumerate(events):
            record = known[keys[i]]
            partition, offset = record.partition, record.offset
            assert partition is not None
            assert offset is not None
            if covering.get(partition, -1) < offset:
                covering[partition] = offset
            accepted.append(
                AcceptedEvent(e.id, e.source, f"{prefix}{partition}:{offset}", i not in appended)
            )
        answer = Accepted(accepted, Position(self.topic, covering), len(ours))
        logger.info(
            "accepted %d events (%d appended) at %s",
            len(accepted),
            len(records),
            answer.position,
            extra={"event_ids": [e.id for e in events[:LOGGED_IDS]], "events": len(events)},
        )
        return answer

    async def _claim(
        self, events: Sequence[Incoming], unique: list[int], claims: dict[int, Claim]
    ) -> tuple[dict[str, IdempotencyRecord], list[int]]:
        """Claim every identity. Returns what is already known, and what is now ours."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        known: dict[str, IdempotencyRecord] = {}
        ours: list[int] = []
        todo = unique
        while todo:
            existing = await self._idempotency.claim([claims[i] for i in todo])
            conflicts: list[dict[str, object]] = []
            waiting: list[int] = []
            for i, record in zip(todo, existing, strict=True):
                if record is None:
                    ours.append(i)
                elif record.digest != claims[i].record.digest:
                    conflicts.append(
                        _conflict(i, events[i], "was accepted before with different content")
                    )
                elif record.state == "done":
                    known[claims[i].event_key] = record
                else:
                    waiting.append(i)
            if conflicts:
                await self._idempotency.release([claims[i] for i in ours])
                raise ConflictError(conflicts)
            if not waiting:
                break
            # Another request holds these claims: wait (bounded) for its outcome.
            done, released = await self._wait_for_others(
                [claims[i].event_key for i in waiting], deadline
            )
            settled = set(done) | released
            still = [i for i in waiting if claims[i].event_key not in settled]
            if still:
                await self._idempotency.release([claims[i] for i in ours])
                raise UnavailableError(
                    f"event {events[still[0]].id!r} is being written by another request "
                    "whose outcome is not known yet"
                )
            for i in waiting:
                if claims[i].event_key in done:
                    known[claims[i].event_key] = done[claims[i].event_key]
            todo = [i for i in waiting if claims[i].event_key in released]
        ours.sort()
        return known, ours

    async def _wait_for_others(
        self, event_keys: list[str], deadline: float
    ) -> tuple[dict[str, IdempotencyRecord], set[str]]:
        """Poll the claims of other requests until each is done or released, or the deadline."""
        loop = asyncio.get_running_loop()
        done: dict[str, IdempotencyRecord] = {}
        released: set[str] = set()
        remaining = list(event_keys)
        while remaining and loop.time() < deadline:
            await asyncio.sleep(PENDING_POLL_S)
            records = await self._idempotency.lookup(remaining)
            for key, record in zip(list(remaining), records, strict=True):
                if record is None:
                    released.add(key)  # the other request gave up: claim it ourselves
                    remaining.remove(key)
                elif record.state == "done":
                    done[key] = record
                    remaining.remove(key)
        return done, released

    def _settle_later(self, unknown: list[tuple[Claim, Unknown]]) -> None:
        task = asyncio.create_task(self._settle(unknown), name="ingest-settle")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, unknown: list[tuple[Claim, Unknown]]) -> None:
        """Hold the claims of records with an unknown outcome until the producer knows it."""
        outcomes = asyncio.gather(*(u.outcome for _, u in unknown))
        try:
            while True:
                done, _ = await asyncio.wait([outcomes], timeout=self._extend_every_s)
                if done:
                    break
                try:
                    await self._idempotency.extend([c for c, _ in unknown])
                except IdempotencyUnavailableError as exc:
                    logger.warning("could not extend claims of unknown outcome: %s", exc)
            results: list[Written | NotWritten] = outcomes.result()
            completed = [
                (claim, claim.record.done(r.partition, r.offset))
                for (claim, _), r in zip(unknown, results, strict=True)
                if isinstance(r, Written)
            ]
            failed = [
                c for (c, _), r in zip(unknown, results, strict=True) if not isinstance(r, Written)
            ]
            await self._idempotency.complete(completed)
            await self._idempotency.release(failed)
            logger.info(
                "settled %d events of unknown outcome: %d written, %d not",
                len(unknown),
                len(completed),
                len(failed),
            )
        except IdempotencyUnavailableError as exc:
            logger.warning("could not record a late publish outcome: %s", exc)
        finally:
            if not outcomes.done():
                outcomes.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await outcomes

    async def _partition_keys(
        self,
        events: Sequence[Incoming],
        keys: Sequence[str],
        pkeys: list[str | None],
        unique: Sequence[int],
        first_index: dict[str, int],
    ) -> list[str]:
        """Every event's partition key: `pkeys` (`partition_key` of each event), with each
        retraction's None replaced by its target's key."""
        targets: dict[int, str] = {}
        refs: dict[str, tuple[str, str]] = {}  # a target's key -> its (source, id)
        for i in unique:
            if pkeys[i] is None:
                target = events[i].retracts
                if target is not None:
                    targets[i] = event_key(*target)
                    refs[targets[i]] = target
        if not targets:
            return [k or "" for k in pkeys]
        problems: list[dict[str, object]] = []
        pending: dict[int, str] = {}
        for i, t in targets.items():
            if t not in first_index:
                pending[i] = t
            elif events[first_index[t]].retracts is not None:
                problems.append(_bad_target(i, events[i], "retracts a retraction; it is final"))
            else:
                # The target is in this same request: the retraction shares its key.
                pkeys[i] = pkeys[first_index[t]]
        found = await self._idempotency.lookup(list(pending.values())) if pending else []
        # Ingest remembers a key for the idempotency window only; an older target is found
        # in the read models (the projector stores every event it applied, key included).
        older = [t for t, record in zip(pending.values(), found, strict=True) if record is None]
        stored = dict(zip(older, await self._stored_targets([refs[t] for t in older]), strict=True))
        for (i, t), record in zip(pending.items(), found, strict=True):
            if record is not None:
                # Done, or pending (being written now): either way its key is known.
                pkeys[i] = record.partition_key
                continue
            logged = stored.get(t)
            if logged is None or logged.partitionkey is None:
                problems.append(
                    _bad_target(i, events[i], "retracts an event Chancery has no record of")
                )
            elif isinstance(logged, EventRetracted):
                problems.append(_bad_target(i, events[i], "retracts a retraction; it is final"))
            else:
                pkeys[i] = logged.partitionkey
        if problems:
            raise UnknownTargetError(problems)
        return [pkeys[first_index[keys[i]]] or "" for i in range(len(events))]

    async def _stored_targets(self, targets: list[tuple[str, str]]) -> list[Event | None]:
        if not targets or self._targets is None:
            return [None] * len(targets)
        try:
            return await self._targets.lookup(targets)
        except ReadModelsUnavailableError as exc:
            raise UnavailableError(f"read models unavailable: {exc}") from exc


def _conflict(index: int, event: Incoming, why: str) -> dict[str, object]:
    return {
        "index": index,
        "id": event.id,
        "source": event.source,
        "field": "id",
        "message": f"an event with this source and id {why}",
    }


def _bad_target(index: int, event: Incoming, why: str) -> dict[str, object]:
    return {"index": index, "id": event.id, "field": "data.target", "message": why}
