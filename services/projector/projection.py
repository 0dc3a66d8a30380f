"""From partition batches to their read-model writes, with the shared domain code.

Per round (the batches of several partitions at once): one pipelined read of what each batch
needs to know (which identities its partition has already applied or seen retracted, the id
index), then, batch by batch, the domain's effects accumulated, and one more read for the
trips the batch touches, which are refolded. Each batch's plan is handed over as soon as it
is complete (`plans`), so that its writes can go to Redis while the next batch is folded.
Changes to the same key are merged before they are written (a day bucket gets one HINCRBY
per field per batch; an entry added then retracted in the same batch is never written), so
the number of operations grows with the keys touched, not with the events.

What each event does, per partition (keys in chancery.keyspace):
- every new identity: stored by event_key, indexed by id, appended to the stream (its
  event_key, type and actors: the event itself is in `events`);
- a duplicate identity: nothing (ingest should have stopped it; this is the second guard,
  and what makes replaying already-applied records harmless), unless it is a copy recorded
  earlier than the one applied (a retry that ingest re-stamped reached the log first): then
  that copy takes the applied one's place, its bytes in `events`, trips and people, with
  the same effects; the stream entry stays where the first copy was applied;
- a retraction: its target's effects are undone, or, if the target has not arrived yet,
  the target is marked so that it arrives without effect; either way the target is mapped
  to the retraction in `retractions`;
- any other event: its relation effects (ledger parts), timeline entries, relation index,
  and for visits the trip's state (refolded from the trip's stored events) and visits index.

`diplomacy.event.coded` (GDELT and ICEWS imports: nearly all real traffic) has a fast path
that writes exactly what the general path writes (a unit test holds the two equal) from a
few plain values, without building the domain's models per event: what an event adds
depends only on its pair, its day, its CAMEO code and Goldstein value, and its identity,
and the first three repeat across events, so their keys and fields are computed once.

A batch whose fold raises comes back as that exception, in its partition's place: the other
partitions of the round are not held back, and the projector retries the failed batch one
event at a time to find (and park) the poison event.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from chancery import keyspace
from chancery.contract import (
    EnvoyAppointed,
    Event,
    EventCoded,
    EventRetracted,
    When,
    cameo,
    decode_event,
    event_key,
)
from chancery.domain.history import earlier_copy
from chancery.domain.itineraries import fold_trip, trip_payload
from chancery.domain.ordering import order_string
from chancery.domain.relations import DayBucket, coded_contact_kind, relation_effects
from chancery.domain.timelines import TimelineRefs, timeline_refs
from chancery.keyspace import PartitionSpace

from .plan import WritePlan
from .records import LogRecord

logger = logging.getLogger(__name__)

CODED_TYPE = "diplomacy.event.coded"
CODED_SUFFIX = keyspace.timeline_member("", CODED_TYPE)
"""What keyspace.timeline_member appends to a coded event's order string."""
CACHE_LIMIT = 50_000
"""Entries per memo (keys of a partition, coded-event facts) before it starts afresh."""
MAX_SPACES = 64
"""Partition spaces whose key memos are kept (a version change brings new ones)."""

Value = bytes | str


@dataclass
class _Changes:
    """Net changes of one batch, merged per key before they become operations."""

    hashes: dict[str, dict[str, Value | None]] = field(default_factory=lambda: defaultdict(dict))
    zsets: dict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    counters: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    # coded events (fast path): their timeline members per pair (sent once for the pair's
    # three timelines), and how many there are of each (pair, facts), counted once per
    # batch instead of once per event
    coded_members: dict[_CodedPair, list[str]] = field(default_factory=lambda: defaultdict(list))
    coded_counts: dict[tuple[_CodedPair, _CodedFacts], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    retracted: set[str] = field(default_factory=set)
    trips: dict[str, dict[str, bytes | None]] = field(default_factory=lambda: defaultdict(dict))


class _CodedPair:
    """Everything a coded event of one pair of actors touches, but its day and identity."""

    __slots__ = ("actors", "contacts", "days", "first", "partners", "second", "timelines")

    def __init__(self, keys: _Keys, a: str, b: str) -> None:
        first, second = (a, b) if a < b else (b, a)
        pair = f"{first}|{second}"
        self.first = first
        self.second = second
        self.days = keys.relation(pair, "days")
        self.contacts = keys.relation(pair, "contacts")
        # the relation index: (key, field) of both directions
        self.partners = ((keys.partners(first), second), (keys.partners(second), first))
        # the pair's timeline, then each actor's
        self.timelines = (
            keys.pair_timeline(pair),
            keys.country_timeline(first),
            keys.country_timeline(second),
        )
        self.actors = f"{first} {second}"  # the stream's `a`: the actors, sorted


class _Keys:
    """Key builders of one partition, memoised (they validate every part)."""

    __slots__ = ("_cache", "coded_pairs", "space")

    def __init__(self, space: PartitionSpace) -> None:
        self.space = space
        self._cache: dict[tuple[str, str], str] = {}
        self.coded_pairs: dict[tuple[str, str], _CodedPair] = {}  # (actor1, actor2) ->

    def relation(self, pair: str, part: str) -> str:
        k = (pair, part)
        key = self._cache.get(k)
        if key is None:
            key = self._remember(k, self.space.relation(pair, part))
        return key

    def _remember(self, k: tuple[str, str], key: str) -> str:
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[k] = key
        return key

    def _memo(self, kind: str, name: str) -> str:
        k = (kind, name)
        key = self._cache.get(k)
        if key is None:
            space = self.space
            if kind == "partners":
                key = space.partners(name)
            elif kind == "pair":
                key = space.pair_timeline(name)
            else:
                key = space.country_timeline(name)
            self._remember(k, key)
        return key

    def partners(self, country: str) -> str:
        return self._memo("partners", country)

    def pair_timeline(self, pair: str) -> str:
        return self._memo("pair", pair)

    def country_timeline(self, country: str) -> str:
        return self._memo("country", country)

    def coded(self, actor1: str, actor2: str) -> _CodedPair:
        """What a coded event between two different actors touches in this partition."""
        k = (actor1, actor2)
        found = self.coded_pairs.get(k)
        if found is None:
            if len(self.coded_pairs) >= CACHE_LIMIT:
                self.coded_pairs.clear()
            found = self.coded_pairs[k] = _CodedPair(self, actor1, actor2)
        return found


class _CodedFacts:
    """What a coded event's day, code and Goldstein value add, as plain values."""

    __slots__ = ("contact_suffix", "day_fields", "kind", "sort_key", "when")

    def __init__(self, occurred: When, code: str, goldstein: float | None) -> None:
        entry = cameo.lookup(code)
        # As relation_effects: the event's own Goldstein value, else its code's.
        value = entry.goldstein if goldstein is None else goldstein
        bucket = DayBucket.one(entry.quad_class, round(value * 10))
        self.day_fields = tuple(keyspace.day_fields(occurred.first_day, bucket).items())
        self.kind = coded_contact_kind(code)
        self.sort_key = occurred.sort_key()
        self.when = occurred.text
        # what keyspace.contact_member_of appends to the order string (None: no contact)
        self.contact_suffix = (
            None if self.kind is None else keyspace.contact_member_of("", self.kind, self.when)
        )


_FACTS: dict[tuple[str, str, float | None], _CodedFacts] = {}


def _coded_facts(occurred: When, code: str, goldstein: float | None) -> _CodedFacts:
    k = (occurred.text, code, goldstein)
    found = _FACTS.get(k)
    if found is None:
        if len(_FACTS) >= CACHE_LIMIT:
            _FACTS.clear()
        found = _FACTS[k] = _CodedFacts(occurred, code, goldstein)
    return found


@dataclass(frozen=True)
class Carry:
    """What a planned batch will have applied, for its partition's next batch when that one
    is planned before the first one's script has run (its reads may not see those writes).

    Either way the reads are right when this is added to them: identities applied (and
    targets decoded), targets retracted, and the id-index values written. A batch that
    touched trips carries `trips`: trip reads are not patched, the caller waits instead.
    """

    known: dict[str, Event]
    retracted: frozenset[str]
    ids: dict[str, str]
    trips: bool


@dataclass
class _Work:
    """One partition batch on its way through the stages of a round."""

    space: PartitionSpace
    records: Sequence[LogRecord]
    keys: _Keys
    lookup: list[str] = field(default_factory=list)
    id_fields: list[str] = field(default_factory=list)  # one per record
    targets: dict[str, str] = field(default_factory=dict)
    plan: WritePlan = field(default_factory=WritePlan)
    changes: _Changes = field(default_factory=_Changes)
    known: dict[str, Event] = field(default_factory=dict)
    carried: Carry | None = None  # the partition's previous batch, maybe not yet applied
    trip_keys: list[str] = field(default_factory=list)
    error: Exception | None = None

    def carry(self) -> Carry:
        ids = self.changes.hashes.get(self.space.event_ids, {})
        return Carry(
            known=self.known,
            retracted=frozenset(self.changes.retracted),
            ids={f: v for f, v in ids.items() if isinstance(v, str)},
            trips=bool(self.changes.trips),
        )


@dataclass
class Reading:
    """Batches whose read is on its way (see `ReadModelProjection.read`)."""

    works: list[_Work]
    replies: asyncio.Future[list[Any]]


async def _execute(pipe: Pipeline) -> list[Any]:
    async with pipe:
        return await pipe.execute()


class ReadModelProjection:
    def __init__(self, redis: Redis, *, fast_paths: bool = True) -> None:
        self._redis = redis
        self._fast = fast_paths
        self._keys: dict[tuple[int, int], _Keys] = {}
        self.duplicates = 0

    def _keys_of(self, space: PartitionSpace) -> _Keys:
        k = (space.version, space.partition)
        keys = self._keys.get(k)
        if keys is None:
            if len(self._keys) >= MAX_SPACES:
                self._keys.clear()
            keys = self._keys[k] = _Keys(space)
        return keys

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
        carried: Sequence[Carry | None] = (),
    ) -> Reading:
        """Send the one read the batches need (what each partition already holds about their
        identities) and return without waiting for it: `plans` folds once it is back.

        `carried[i]`: what batch i's partition's previous batch applies, if its script may
        not have run yet (see `Carry`; one with `trips` is refused: wait for it instead)."""
        works = [_Work(space, records, self._keys_of(space)) for space, records in batches]
        for w, carry in zip(works, carried, strict=False):
            if carry is not None and carry.trips:
                raise ValueError("a batch that touched trips must be applied before the next")
            w.carried = carry
        id_field = keyspace.event_id_field
        for w in works:
            targets = w.targets
            for r in w.records:
                if type(r.event) is EventRetracted:
                    target = r.event.data.target
                    targets[r.ident] = event_key(target.source, target.id)
            w.id_fields = [id_field(r.event.id) for r in w.records]
            w.lookup = list(dict.fromkeys([r.ident for r in w.records] + list(targets.values())))
        pipe = self._redis.pipeline(transaction=False)
        for w in works:
            if w.lookup:
                pipe.hmget(w.space.events, w.lookup)
                pipe.smismember(w.space.retracted, w.lookup)
                pipe.hmget(w.space.event_ids, list(dict.fromkeys(w.id_fields)))
        return Reading(works, asyncio.ensure_future(_execute(pipe)))

    async def plans(
        self, reading: Reading
    ) -> AsyncGenerator[tuple[int, WritePlan | Exception, Carry | None], None]:
        """(index, plan or the exception its fold raised, what the plan carries) of each
        batch of `reading`, as each is ready: each batch folded in turn, so that the caller
        can send a batch's writes while the next one is folded."""
        replies = await reading.replies
        at = 0
        for i, w in enumerate(reading.works):
            if w.lookup:
                stored_raw, flags, id_values = replies[at : at + 3]
                at += 3
                try:
                    self._effects_of_batch(w, stored_raw, flags, id_values)
                except Exception as exc:  # noqa: BLE001 - a fold failure stays in its batch
                    w.error = exc
            if w.error is None and w.changes.trips:
                await self._refold_trips(w)
            if w.error is None:
                _emit(w.changes, w.space, w.plan)
                yield i, w.plan, w.carry()
            else:
                yield i, w.error, None

    async def _refold_trips(self, w: _Work) -> None:
        """Refold every trip the batch touched (one more read: the trips' stored events)."""
        w.trip_keys = sorted(w.changes.trips)
        async with self._redis.pipeline(transaction=False) as pipe:
            for tk in w.trip_keys:
                pipe.hgetall(w.space.trip_events(tk))
                pipe.get(w.space.trip_state(tk))
            replies = await pipe.execute()
        try:
            self._trips(w, replies)
        except Exception as exc:  # noqa: BLE001 - a fold failure stays in its batch
            w.error = exc

    def _effects_of_batch(
        self,
        w: _Work,
        stored_raw: list[bytes | None],
        flags: list[int],
        id_values: list[bytes | None],
    ) -> None:
        space = w.space
        stored: dict[str, bytes] = {
            k: v for k, v in zip(w.lookup, stored_raw, strict=True) if v is not None
        }
        retracted = {k for k, flag in zip(w.lookup, flags, strict=True) if flag}
        # an event id -> the space-separated event_keys stored under it
        id_index: dict[str, str] = {
            f: v.decode()
            for f, v in zip(dict.fromkeys(w.id_fields), id_values, strict=True)
            if v is not None
        }
        known = w.known
        carried: dict[str, Event] = {}
        if w.carried is not None:
            carried = w.carried.known
            retracted |= w.carried.retracted
            id_index.update(w.carried.ids)
        plan = w.plan
        changes = w.changes
        keys = w.keys
        ids_changes = changes.hashes[space.event_ids]
        stored_events: dict[str, bytes] = {}
        restamped: dict[str, bytes] = {}  # stored events replaced by an earlier-stamped copy
        fast = self._fast
        contacts = changes.zsets
        coded_members = changes.coded_members
        coded_counts = changes.coded_counts
        stream = plan.stream
        pairs = keys.coded_pairs
        for (_, offset, _, value, event, ident, _), id_field in zip(
            w.records, w.id_fields, strict=True
        ):
            if ident in stored or ident in known or ident in carried:
                self.duplicates += 1
                kept = known.get(ident) or carried.get(ident)
                if kept is None:
                    applied = keyspace.decode_stored_event(stored[ident])[1]
                    if applied == value:
                        continue  # the same bytes: the common duplicate, nothing to decode
                    kept = decode_event(applied)
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
                    restamped[ident] = b"%d " % offset + value
                    if ident not in retracted and not isinstance(event, EventRetracted):
                        # what holds the copy's bytes (trips, people) takes the new ones
                        self._effects(keys, changes, kept, ident, None, present=False)
                        self._effects(keys, changes, event, ident, value, present=True)
                continue
            known[ident] = event
            stored_events[ident] = b"%d " % offset + value
            idents = id_index.get(id_field)
            if idents is None:
                id_index[id_field] = ids_changes[id_field] = ident
            elif ident not in idents.split(" "):
                id_index[id_field] = ids_changes[id_field] = f"{idents} {ident}"
            if fast and type(event) is EventCoded and ident not in retracted:
                # What _effects(present=True) writes for it, from plain values.
                data = event.data
                actor1, actor2 = data.actor1, data.actor2
                if actor1 != actor2:
                    coded = pairs.get((actor1, actor2)) or keys.coded(actor1, actor2)
                    stream += (offset, ident, CODED_TYPE, coded.actors)  # plan.xadd
                    occurred, code, goldstein = data.occurred, data.cameo, data.goldstein
                    facts = _FACTS.get((occurred.text, code, goldstein)) or _coded_facts(
                        occurred, code, goldstein
                    )
                    coded_counts[(coded, facts)] += 1  # its day fields and relation index
                    order = f"{facts.sort_key} {event.source} {event.id}"
                    suffix = facts.contact_suffix
                    if suffix is not None:  # keyspace.contact_member_of, its tail made once
                        contacts[coded.contacts][order + suffix] = True
                    coded_members[coded].append(order + CODED_SUFFIX)
                    continue
            refs = timeline_refs(event)
            plan.xadd(offset, ident, event.type, " ".join(refs.countries))
            if isinstance(event, EventRetracted):
                target_key = w.targets[ident]
                if target_key in retracted:
                    continue  # already retracted: a correction is applied once
                target = known.get(target_key) or carried.get(target_key)
                if target is None and target_key in stored:
                    target = decode_event(keyspace.decode_stored_event(stored[target_key])[1])
                    known[target_key] = target
                if isinstance(target, EventRetracted):
                    continue  # a retraction of a retraction is void
                retracted.add(target_key)
                changes.retracted.add(target_key)
                changes.hashes[space.retractions][target_key] = ident
                if target is not None:
                    self._effects(keys, changes, target, target_key, None, present=False)
            elif ident not in retracted:
                self._effects(keys, changes, event, ident, value, present=True, refs=refs)
        plan.events += len(stored_events)
        stored_events.update(restamped)
        if stored_events:
            plan.hset(space.events, stored_events)

    @staticmethod
    def _effects(
        keys: _Keys,
        changes: _Changes,
        event: Event,
        ident: str,
        raw: bytes | None,
        *,
        present: bool,
        refs: TimelineRefs | None = None,
    ) -> None:
        """Add (present) or undo (not present) everything `event` contributes."""
        sign = 1 if present else -1
        counters = changes.counters
        hashes = changes.hashes
        zsets = changes.zsets
        for effect in relation_effects(event).values():
            pair = effect.pair.key
            days = keys.relation(pair, "days")
            for name, value in keyspace.day_fields(effect.day, effect.bucket).items():
                counters[(days, name)] += sign * value
            if effect.status is not None:
                hashes[keys.relation(pair, "status")][ident] = (
                    keyspace.encode_entry(effect.status) if present else None
                )
            if effect.partnership is not None:
                hashes[keys.relation(pair, "partnership")][ident] = (
                    keyspace.encode_entry(effect.partnership) if present else None
                )
            if effect.plan is not None:
                hashes[keys.relation(pair, "plans")][ident] = (
                    keyspace.encode_entry(effect.plan) if present else None
                )
            if effect.contact is not None:
                zsets[keys.relation(pair, "contacts")][keyspace.contact_member(effect.contact)] = (
                    present
                )
            # the relation index counts events: an event derived from another counts none
            count = sign * effect.bucket.count
            if count:
                first, second = effect.pair.first, effect.pair.second
                counters[(keys.partners(first), second)] += count
                counters[(keys.partners(second), first)] += count
        refs = refs or timeline_refs(event)
        member = keyspace.timeline_member(order_string(event), event.type)
        for pair_ in refs.pairs:
            zsets[keys.pair_timeline(pair_.key)][member] = present
        for actor in refs.countries:
            zsets[keys.country_timeline(actor)][member] = present
        trip = trip_payload(event)
        if trip is not None:
            tk = keyspace.trip_key(trip.traveller.id, trip.trip_id)
            changes.trips[tk][ident] = raw if present else None
        if isinstance(event, EnvoyAppointed):
            hashes[keys.space.person(event.data.person.id)][ident] = raw if present else None

    @staticmethod
    def _trips(w: _Work, replies: Sequence[object]) -> None:
        """Refold every trip the batch touched from its stored events plus the changes."""
        space, changes, known = w.space, w.changes, w.known
        for i, tk in enumerate(w.trip_keys):
            stored_events = replies[2 * i]
            stored_state = replies[2 * i + 1]
            assert isinstance(stored_events, dict)
            events_raw: dict[str, bytes] = {k.decode(): v for k, v in stored_events.items()}
            old = keyspace.decode_trip(stored_state) if isinstance(stored_state, bytes) else None
            trip_events = changes.hashes[space.trip_events(tk)]
            for ident, raw in changes.trips[tk].items():
                trip_events[ident] = raw
                if raw is None:
                    events_raw.pop(ident, None)
                else:
                    events_raw[ident] = raw
            events = [known.get(k) or decode_event(raw) for k, raw in events_raw.items()]
            new = fold_trip(events) if events else None
            latest = new or old
            person = latest.traveller.id if latest is not None else None
            for country, member in keyspace.visit_members(tk, old) if old else ():
                changes.zsets[space.visits(country)][member] = False
            if new is None:
                w.plan.delete(space.trip_state(tk))
                if person is not None:
                    changes.hashes[space.person_trips(person)][tk] = None
                continue
            for country, member in keyspace.visit_members(tk, new):
                changes.zsets[space.visits(country)][member] = True
            w.plan.set(space.trip_state(tk), keyspace.encode_trip(new))
            first = min(events, key=order_string)
            changes.hashes[space.person_trips(new.traveller.id)][tk] = order_string(first).encode()


def _emit(changes: _Changes, space: PartitionSpace, plan: WritePlan) -> None:
    for key, fields in changes.hashes.items():
        puts = {f: v for f, v in fields.items() if v is not None}
        if puts:
            plan.hset(key, puts)
        plan.hdel(key, [f for f, v in fields.items() if v is None])
    removed: set[str] = set()
    for key, members in changes.zsets.items():
        gone = [m for m, present in members.items() if not present]
        removed.update(gone)
        plan.zrem(key, gone)
        plan.zadd_lex(key, [m for m, present in members.items() if present])
    for coded, added in changes.coded_members.items():
        # an entry added, then retracted in the same batch, is not written at all
        kept = [m for m in added if m not in removed] if removed else added
        plan.zadd_lex_each(coded.timelines, kept)
    counters = changes.counters
    for (coded, facts), n in changes.coded_counts.items():
        days = coded.days
        for name, value in facts.day_fields:
            counters[(days, name)] += n * value
        first, second = coded.partners
        counters[first] += n
        counters[second] += n
    plan.hincrby_each(counters)
    if changes.retracted:
        plan.sadd(space.retracted, changes.retracted)
