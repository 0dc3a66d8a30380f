"""From partition batches to their read-model writes, with the shared domain code.

Per round (the batches of several partitions at once): one pipelined read of what each batch
needs to know (the id index of its events' and targets' ids, which identities its partition
has seen retracted), then, only for ids already known there, the stored events under them
(to tell a duplicate from another source's event of the same id, or to undo a target);
then, batch by batch, the events folded into the batch's net changes (`changes`), and one
more read for the trips the batch touches, which are refolded (`trips`). Each batch's plan
is handed over as soon as it is complete (`plans`), so that its writes can go to Redis while
the next batch is folded.

What each event does, per partition (keys and encodings in chancery.keyspace, layout 2):
- every new identity: stored, compressed, under its offset (its *place*), its place indexed
  under its id, and an entry appended to the stream under the same offset;
- a duplicate identity: nothing (ingest should have stopped it; this is the second guard,
  and what makes replaying already-applied records harmless), unless it is a copy recorded
  earlier than the one applied (a retry that ingest re-stamped reached the log first): then
  that copy takes the applied one's place (in `events` under the same place, with its own
  offset), its bytes in trips and people, with the same effects; the stream entry stays
  where the first copy was applied;
- a retraction: its target's effects are undone, or, if the target has not arrived yet,
  the target is marked so that it arrives without effect; either way the target is mapped
  to the retraction's place in `retractions`, and a stored target's place is in `retracted`;
- any other event: its effects (`effects.add_effects`): relation ledger parts, pair and solo
  timeline entries, relation index, and for visits the trip's state and visits index; coded events
  take a fast path (`coded`) that writes the same from what the domain said of the first
  event with the same pair and facts.

A batch whose fold raises comes back as that exception, in its partition's place: the other
partitions of the round are not held back, and the projector retries the failed batch one
event at a time to find (and park) the poison event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from cachetools import LRUCache

from chancery import keyspace
from chancery.contract import Event, EventCoded, EventRetracted, decode_event, event_key
from chancery.domain.history import earlier_copy
from chancery.keyspace import PartitionSpace

from .changes import NetChanges
from .coded import CodedEvents, CodedPairs
from .effects import add_effects
from .partition_keys import PartitionKeys
from .plan import WritePlan
from .records import LogRecord
from .trips import refold_trips

logger = logging.getLogger(__name__)

MAX_SPACES = 64
"""Partition spaces whose keys the fold remembers (a version change brings new ones)."""


class ReadPipeline(Protocol):
    """The reads the fold sends together, in one round trip."""

    def hmget(self, name: str, keys: list[str]) -> object: ...

    def hgetall(self, name: str) -> object: ...

    def get(self, name: str) -> object: ...

    async def execute(self) -> list[Any]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> object: ...


class PipelinedReads(Protocol):
    """What the fold reads through: `redis.asyncio.Redis` (the tests' twin: memory)."""

    def pipeline(self, transaction: bool = ...) -> ReadPipeline: ...


@dataclass(frozen=True)
class InFlightWrites:
    """What a planned batch will have applied, for its partition's next batch when that one
    is planned before the first one's script has run (its reads may not see those writes).

    Either way the reads are right when this is added to them: identities applied (and
    targets decoded) with their places, targets retracted, and the id-index values written.
    A batch that touched trips says so (`trips`): trip reads are not patched, the caller
    waits instead.
    """

    known: dict[str, Event]
    places: dict[str, int]
    retracted: frozenset[str]
    ids: dict[str, str]
    trips: bool


@dataclass(frozen=True)
class _Remembered:
    """What the fold remembers of one partition space from batch to batch."""

    keys: PartitionKeys
    coded_pairs: CodedPairs


@dataclass
class BatchFold:
    """One partition batch on its way through the stages of a round."""

    space: PartitionSpace
    records: Sequence[LogRecord]
    remembered: _Remembered
    lookup: list[str] = field(default_factory=list)  # the identities read: records', targets'
    id_fields: list[str] = field(default_factory=list)  # one per record
    lookup_ids: list[str] = field(default_factory=list)  # the ids read: records', targets'
    targets: dict[str, str] = field(default_factory=dict)  # retraction -> its target
    plan: WritePlan = field(default_factory=WritePlan)
    changes: NetChanges = field(default_factory=NetChanges)
    known: dict[str, Event] = field(default_factory=dict)  # decoded, by event_key
    places: dict[str, int] = field(default_factory=dict)  # where each known identity is stored
    in_flight: InFlightWrites | None = None  # the partition's previous batch, maybe unapplied
    error: Exception | None = None

    def writes(self) -> InFlightWrites:
        ids = self.changes.hashes.get(self.space.event_ids, {})
        return InFlightWrites(
            known=self.known,
            places=self.places,
            retracted=frozenset(self.changes.retracted),
            ids={f: v for f, v in ids.items() if isinstance(v, str)},
            trips=bool(self.changes.trips),
        )


@dataclass(frozen=True)
class _Stored:
    """An event the partition already holds: where, which copy, and its bytes."""

    place: int
    raw: bytes


@dataclass
class PendingRead:
    """Batches whose read is on its way (see `ReadModelProjection.read`)."""

    folds: list[BatchFold]
    replies: asyncio.Future[list[Any]]


async def _execute(pipe: ReadPipeline) -> list[Any]:
    # Not `async with pipe`: entering redis-py's cluster pipeline empties its queue, and
    # these commands were queued before. `execute` gives the connections back either way.
    return await pipe.execute()


class ReadModelProjection:
    """`fast_paths=False` folds coded events the general way too (the property tests compare
    the two)."""

    def __init__(self, redis: PipelinedReads, *, fast_paths: bool = True) -> None:
        self._redis = redis
        self._fast = fast_paths
        self._remembered: LRUCache[tuple[int, int], _Remembered] = LRUCache(MAX_SPACES)
        self.duplicates = 0

    def _remembered_of(self, space: PartitionSpace) -> _Remembered:
        k = (space.version, space.partition)
        remembered = self._remembered.get(k)
        if remembered is None:
            keys = PartitionKeys(space)
            remembered = self._remembered[k] = _Remembered(keys, CodedPairs(keys))
        return remembered

    async def plan(
        self, batches: Sequence[tuple[PartitionSpace, Sequence[LogRecord]]]
    ) -> list[WritePlan | Exception]:
        """Each batch's plan, or the exception its fold raised (Redis errors propagate)."""
        out: list[WritePlan | Exception] = [WritePlan() for _ in batches]
        async for i, planned, _ in self.plans(self.read(batches)):
            out[i] = planned
        return out

    def read(
        self,
        batches: Sequence[tuple[PartitionSpace, Sequence[LogRecord]]],
        in_flight: Sequence[InFlightWrites | None] = (),
    ) -> PendingRead:
        """Send the one read the batches need (what each partition already holds about their
        identities) and return without waiting for it: `plans` folds once it is back.

        `in_flight[i]`: what batch i's partition's previous batch applies, if its script may
        not have run yet (see `InFlightWrites`; one with `trips` is refused: wait for it)."""
        folds = [BatchFold(space, rs, self._remembered_of(space)) for space, rs in batches]
        for fold, writes in zip(folds, in_flight, strict=False):
            if writes is not None and writes.trips:
                raise ValueError("a batch that touched trips must be applied before the next")
            fold.in_flight = writes
        id_field = keyspace.event_id_field
        for fold in folds:
            targets = fold.targets
            target_ids = []
            for r in fold.records:
                if type(r.event) is EventRetracted:
                    target = r.event.data.target
                    targets[r.ident] = event_key(target.source, target.id)
                    target_ids.append(id_field(target.id))
            fold.id_fields = keyspace.event_id_fields([r.event.id for r in fold.records])
            fold.lookup = list(
                dict.fromkeys([r.ident for r in fold.records] + list(targets.values()))
            )
            fold.lookup_ids = list(dict.fromkeys(fold.id_fields + target_ids))
        pipe = self._redis.pipeline(transaction=False)
        for fold in folds:
            if fold.lookup:
                pipe.hmget(fold.space.event_ids, fold.lookup_ids)
                pipe.hmget(fold.space.retractions, fold.lookup)
        return PendingRead(folds, asyncio.ensure_future(_execute(pipe)))

    async def plans(
        self, read: PendingRead
    ) -> AsyncGenerator[tuple[int, WritePlan | Exception, InFlightWrites | None], None]:
        """(index, plan or the exception its fold raised, what the plan writes) of each batch
        of `read`, as each is ready: each batch folded in turn, so that the caller can send a
        batch's writes while the next one is folded."""
        replies = await read.replies
        at = 0
        for i, fold in enumerate(read.folds):
            if fold.lookup:
                id_values, retracted = replies[at : at + 2]
                at += 2
                try:
                    id_index, stored = await self._stored(fold, id_values)
                    self._fold_batch(fold, id_index, stored, retracted)
                except Exception as exc:  # noqa: BLE001 - a fold failure stays in its batch
                    fold.error = exc
            if fold.error is None and fold.changes.trips:
                await self._refold_trips(fold)
            if fold.error is None:
                fold.changes.emit(fold.space, fold.plan)
                yield i, fold.plan, fold.writes()
            else:
                yield i, fold.error, None

    async def _refold_trips(self, fold: BatchFold) -> None:
        """Refold every trip the batch touched (one more read: the trips' stored events)."""
        trip_keys = sorted(fold.changes.trips)
        async with self._redis.pipeline(transaction=False) as pipe:
            for tk in trip_keys:
                pipe.hgetall(fold.space.trip_events(tk))
                pipe.get(fold.space.trip_state(tk))
            replies = await pipe.execute()
        try:
            refold_trips(
                fold.space,
                trip_keys,
                replies,
                changes=fold.changes,
                known=fold.known,
                plan=fold.plan,
            )
        except Exception as exc:  # noqa: BLE001 - a fold failure stays in its batch
            fold.error = exc

    async def _stored(
        self, fold: BatchFold, id_values: list[bytes | None]
    ) -> tuple[dict[str, str], dict[str, _Stored]]:
        """The id index of the batch's ids (with what the previous batch writes), and the
        events the partition holds under them, by event_key: read only for ids the index
        already has, which in a log of new events is none."""
        id_index: dict[str, str] = {
            f: v.decode() for f, v in zip(fold.lookup_ids, id_values, strict=True) if v is not None
        }
        in_flight = fold.in_flight
        pending = set(in_flight.places.values()) if in_flight is not None else set()
        places = [p for value in id_index.values() for p in keyspace.decode_places(value)]
        wanted = sorted({p for p in places if p not in pending})
        if in_flight is not None:
            id_index.update(in_flight.ids)
        stored: dict[str, _Stored] = {}
        if not wanted:
            return id_index, stored
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(fold.space.events, [keyspace.place_field(p) for p in wanted])
            [values] = await pipe.execute()
        for place, value in zip(wanted, values, strict=True):
            if value is None:
                continue  # written by the previous batch, not applied yet: in `in_flight`
            _, raw = keyspace.decode_stored_event(value, place)
            event = decode_event(raw)
            stored[event.key] = _Stored(place, raw)
            fold.known.setdefault(event.key, event)
            fold.places.setdefault(event.key, place)
        return id_index, stored

    def _fold_batch(
        self,
        fold: BatchFold,
        id_index: dict[str, str],
        stored: dict[str, _Stored],
        retracted_reply: list[bytes | None],
    ) -> None:
        """`id_index`: an event id -> the space-separated places stored under it."""
        space = fold.space
        retracted = {
            k for k, value in zip(fold.lookup, retracted_reply, strict=True) if value is not None
        }
        known = fold.known
        places = fold.places  # what this batch writes, or read: its successor's `in_flight`
        in_flight: dict[str, Event] = {}
        in_flight_places: dict[str, int] = {}
        if fold.in_flight is not None:
            in_flight = fold.in_flight.known
            in_flight_places = fold.in_flight.places
            retracted |= fold.in_flight.retracted
        # what `_stored` decoded is known, but only what this batch applies is its own
        applied = {k for k in known if k not in stored}
        plan = fold.plan
        changes = fold.changes
        keys = fold.remembered.keys
        ids_changes = changes.hashes[space.event_ids]
        new_values: list[bytes] = []  # the bytes of the identities applied, compressed at once
        restamped: dict[str, bytes] = {}  # stored events replaced by an earlier-stamped copy
        coded = None
        if self._fast:
            coded = CodedEvents(fold.remembered.coded_pairs, plan.stream, changes.zsets)
            changes.coded = coded
        encode_stored = keyspace.encode_stored_event
        place_field = keyspace.place_field
        for (_, offset, _, value, event, ident, _), id_field in zip(
            fold.records, fold.id_fields, strict=True
        ):
            if ident in stored or ident in applied or ident in in_flight:
                self.duplicates += 1
                before = stored.get(ident)
                kept = known.get(ident) or in_flight.get(ident)
                if before is not None and ident not in applied:
                    if before.raw == value:
                        continue  # the same bytes: the common duplicate
                    kept = known[ident]
                assert kept is not None
                if earlier_copy(event, kept):
                    # The same event, stamped earlier than the copy applied: a retry that
                    # ingest re-stamped got into the log first. The earlier copy takes its
                    # place, so the read models do not depend on which arrived first.
                    logger.info(
                        "event %s/%s: a copy recorded at %s takes the place of the one "
                        "recorded at %s (a re-stamped retry reached the log first)",
                        event.source,
                        event.id,
                        event.recordedtime,
                        kept.recordedtime,
                        extra={"event_ids": [event.id]},
                    )
                    known[ident] = event
                    applied.add(ident)
                    place = places[ident] if ident in places else in_flight_places[ident]
                    places[ident] = place
                    restamped[keyspace.place_field(place)] = encode_stored(value, offset)
                    if ident not in retracted and not isinstance(event, EventRetracted):
                        # what holds the copy's bytes (trips, people) takes the new ones
                        add_effects(keys, changes, kept, ident, None, place=place, present=False)
                        add_effects(keys, changes, event, ident, value, place=place, present=True)
                continue
            known[ident] = event
            applied.add(ident)
            places[ident] = offset
            new_place = place_field(offset)
            new_values.append(value)
            held = id_index.get(id_field)
            # the id index holds places as the `events` fields name them
            id_index[id_field] = ids_changes[id_field] = (
                new_place if held is None else f"{held} {new_place}"
            )
            if (
                coded is not None
                and type(event) is EventCoded
                and ident not in retracted
                and coded.add(event, ident, offset)
            ):
                continue
            plan.xadd(offset)
            if isinstance(event, EventRetracted):
                target_key = fold.targets[ident]
                if target_key in retracted:
                    continue  # already retracted: a correction is applied once
                target = known.get(target_key) or in_flight.get(target_key)
                if isinstance(target, EventRetracted):
                    continue  # a retraction of a retraction is void
                retracted.add(target_key)
                changes.retracted.add(target_key)
                changes.hashes[space.retractions][target_key] = str(offset)
                if target is not None:
                    target_place = (
                        places[target_key] if target_key in places else in_flight_places[target_key]
                    )
                    changes.retracted_places.add(target_place)
                    add_effects(
                        keys, changes, target, target_key, None, place=target_place, present=False
                    )
            elif ident not in retracted:
                add_effects(keys, changes, event, ident, value, place=offset, present=True)
            else:
                changes.retracted_places.add(offset)  # arrived after its retraction
        plan.events += len(new_values)
        if new_values:  # one per stream entry, in its order
            plan.store_new(space.events, keyspace.encode_stored_events(new_values))
        if restamped:
            plan.hset(space.events, restamped)
