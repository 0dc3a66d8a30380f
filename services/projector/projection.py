"""From partition batches to their read-model writes, with the shared domain code.

Per round (the batches of several partitions at once): one pipelined read of what each batch
needs to know (which identities its partition has already applied or seen retracted, the id
index), then the domain's effects accumulated per partition, then one more pipelined read
for the trips the round touches, which are refolded. Changes to the same key are merged
before they are written (a day bucket gets one HINCRBY per field per batch; an entry added
then retracted in the same batch is never written), so the number of operations grows with
the keys touched, not with the events.

What each event does, per partition (keys in chancery.keyspace):
- every new identity: stored by event_key, indexed by id, appended to the stream;
- a duplicate identity: nothing (ingest should have stopped it; this is the second guard,
  and what makes replaying already-applied records harmless);
- a retraction: its target's effects are undone, or, if the target has not arrived yet,
  the target is marked so that it arrives without effect;
- any other event: its relation effects (ledger parts), timeline entries, relation index,
  and for visits the trip's state (refolded from the trip's stored events) and visits index.

A batch whose fold raises comes back as that exception, in its partition's place: the other
partitions of the round are not held back, and the projector retries the failed batch one
event at a time to find (and park) the poison event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from chancery import keyspace
from chancery.contract import EnvoyAppointed, Event, EventRetracted, decode_event, event_key
from chancery.domain.itineraries import Trip, fold_trip, trip_payload
from chancery.domain.ordering import order_string
from chancery.domain.relations import relation_effects
from chancery.domain.timelines import TimelineRefs, timeline_refs
from chancery.keyspace import PartitionSpace

from .plan import WritePlan
from .records import LogRecord


@dataclass
class _Changes:
    """Net changes of one batch, merged per key before they become operations."""

    hashes: dict[str, dict[str, bytes | None]] = field(default_factory=lambda: defaultdict(dict))
    zsets: dict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    counters: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    retracted: set[str] = field(default_factory=set)
    trips: dict[str, dict[str, bytes | None]] = field(default_factory=lambda: defaultdict(dict))


class _Keys:
    """Key builders of one partition, memoised for a batch (they validate every part)."""

    __slots__ = ("_cache", "space")

    def __init__(self, space: PartitionSpace) -> None:
        self.space = space
        self._cache: dict[tuple[str, str], str] = {}

    def relation(self, pair: str, part: str) -> str:
        k = (pair, part)
        key = self._cache.get(k)
        if key is None:
            key = self._cache[k] = self.space.relation(pair, part)
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
            self._cache[k] = key
        return key

    def partners(self, country: str) -> str:
        return self._memo("partners", country)

    def pair_timeline(self, pair: str) -> str:
        return self._memo("pair", pair)

    def country_timeline(self, country: str) -> str:
        return self._memo("country", country)


@dataclass
class _Work:
    """One partition batch on its way through the stages of a round."""

    space: PartitionSpace
    records: Sequence[LogRecord]
    lookup: list[str] = field(default_factory=list)
    id_fields: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)
    plan: WritePlan = field(default_factory=WritePlan)
    changes: _Changes = field(default_factory=_Changes)
    known: dict[str, Event] = field(default_factory=dict)
    trip_keys: list[str] = field(default_factory=list)
    error: Exception | None = None


class ReadModelProjection:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.duplicates = 0

    async def plan(
        self, batches: Sequence[tuple[PartitionSpace, Sequence[LogRecord]]]
    ) -> list[WritePlan | Exception]:
        """Each batch's plan, or the exception its fold raised (Redis errors propagate)."""
        works = [_Work(space, records) for space, records in batches]
        for w in works:
            w.targets = {
                r.ident: event_key(r.event.data.target.source, r.event.data.target.id)
                for r in w.records
                if isinstance(r.event, EventRetracted)
            }
            w.lookup = list(dict.fromkeys([r.ident for r in w.records] + list(w.targets.values())))
            w.id_fields = list(
                dict.fromkeys(keyspace.event_id_digest(r.event.id) for r in w.records)
            )
        # --- read: what each partition already holds about these identities ------------------
        async with self._redis.pipeline(transaction=False) as pipe:
            for w in works:
                if w.lookup:
                    pipe.hmget(w.space.events, w.lookup)
                    pipe.smismember(w.space.retracted, w.lookup)
                    pipe.hmget(w.space.event_ids, w.id_fields)
            replies = await pipe.execute()
        at = 0
        for w in works:
            if not w.lookup:
                continue
            stored_raw, flags, id_values = replies[at : at + 3]
            at += 3
            try:
                self._effects_of_batch(w, stored_raw, flags, id_values)
            except Exception as exc:  # noqa: BLE001 - a fold failure stays in its batch
                w.error = exc
        # --- trips: refold every trip a batch touched --------------------------------------------
        touched = [w for w in works if w.error is None and w.changes.trips]
        if touched:
            async with self._redis.pipeline(transaction=False) as pipe:
                for w in touched:
                    w.trip_keys = sorted(w.changes.trips)
                    for tk in w.trip_keys:
                        pipe.hgetall(w.space.trip_events(tk))
                        pipe.get(w.space.trip_state(tk))
                replies = await pipe.execute()
            at = 0
            for w in touched:
                n = 2 * len(w.trip_keys)
                try:
                    self._trips(w, replies[at : at + n])
                except Exception as exc:  # noqa: BLE001 - a fold failure stays in its batch
                    w.error = exc
                at += n
        out: list[WritePlan | Exception] = []
        for w in works:
            if w.error is None:
                _emit(w.changes, w.space, w.plan)
                out.append(w.plan)
            else:
                out.append(w.error)
        return out

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
        id_index = {
            f: (v.decode().split(" ") if v else [])
            for f, v in zip(w.id_fields, id_values, strict=True)
        }
        known = w.known
        plan = w.plan
        changes = w.changes
        keys = _Keys(space)
        stored_events: dict[str, bytes] = {}
        for record in w.records:
            ident = record.ident
            if ident in stored or ident in known:
                self.duplicates += 1
                continue
            event = record.event
            known[ident] = event
            plan.events += 1
            stored_events[ident] = keyspace.encode_stored_event(record.offset, record.value)
            id_field = keyspace.event_id_digest(event.id)
            idents = id_index[id_field]
            if ident not in idents:
                idents.append(ident)
                changes.hashes[space.event_ids][id_field] = " ".join(idents).encode()
            refs = timeline_refs(event)
            plan.xadd(record.offset, record.value, event.type, " ".join(refs.countries))
            if isinstance(event, EventRetracted):
                target_key = w.targets[ident]
                if target_key in retracted:
                    continue  # already retracted: a correction is applied once
                target = known.get(target_key)
                if target is None and target_key in stored:
                    target = decode_event(keyspace.decode_stored_event(stored[target_key])[1])
                    known[target_key] = target
                if isinstance(target, EventRetracted):
                    continue  # a retraction of a retraction is void
                retracted.add(target_key)
                changes.retracted.add(target_key)
                if target is not None:
                    self._effects(keys, changes, target, target_key, None, present=False)
            elif ident not in retracted:
                self._effects(keys, changes, event, ident, record.value, present=True, refs=refs)
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
            first, second = effect.pair.first, effect.pair.second
            counters[(keys.partners(first), second)] += sign
            counters[(keys.partners(second), first)] += sign
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
            for country, member in _visit_members(tk, old):
                changes.zsets[space.visits(country)][member] = False
            if new is None:
                w.plan.delete(space.trip_state(tk))
                if person is not None:
                    changes.hashes[space.person_trips(person)][tk] = None
                continue
            for country, member in _visit_members(tk, new):
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
    for key, members in changes.zsets.items():
        plan.zrem(key, [m for m, present in members.items() if not present])
        plan.zadd_lex(key, [m for m, present in members.items() if present])
    for (key, name), delta in changes.counters.items():
        plan.hincrby(key, name, delta)
    if changes.retracted:
        plan.sadd(space.retracted, changes.retracted)


def _visit_members(tk: str, trip: Trip | None) -> list[tuple[str, str]]:
    """(country whose visits index holds it, member) for every leg of `trip`.

    A leg is indexed under its destination ("to") and under the traveller's state or
    organisation ("from"), at its best-known dates: started, else planned, else the trip's.
    """
    if trip is None:
        return []
    out: list[tuple[str, str]] = []
    home = trip.traveller.actor
    for leg in trip.legs:
        when = leg.started or leg.planned or trip.planned
        if when is None and trip.history:
            when = trip.history[0].when
        if when is None:
            continue
        out.append((leg.country, keyspace.visit_member(when, tk, leg.country, "to")))
        out.append((home, keyspace.visit_member(when, tk, leg.country, "from")))
    return out
