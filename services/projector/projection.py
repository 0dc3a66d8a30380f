"""From a partition batch to its read-model writes, with the shared domain code.

Per batch: one pipelined read of what the batch needs to know (which identities this
partition has already applied or seen retracted, the id index, the trips it touches), then
the domain's effects accumulated into one `WritePlan`. Changes to the same key are merged
before they are written (a day bucket gets one HINCRBY per field per batch; an entry added
then retracted in the same batch is never written), so the number of commands grows with the
keys touched, not with the events.

What each event does, per partition (keys in chancery.keyspace):
- every new identity: stored by event_key, indexed by id, appended to the stream;
- a duplicate identity: nothing (ingest should have stopped it; this is the second guard);
- a retraction: its target's effects are undone, or, if the target has not arrived yet,
  the target is marked so that it arrives without effect;
- any other event: its relation effects (ledger parts), timeline entries, relation index,
  and for visits the trip's state (refolded from the trip's stored events) and visits index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from chancery import keyspace
from chancery.contract import (
    EnvoyAppointed,
    Event,
    EventRetracted,
    decode_event,
    event_key,
    retraction_target,
)
from chancery.domain.itineraries import Trip, fold_trip, trip_payload
from chancery.domain.ordering import order_string
from chancery.domain.relations import relation_effects
from chancery.domain.timelines import actors_of, timeline_refs
from chancery.keyspace import PartitionSpace

from .plan import WritePlan
from .projector import LogRecord


@dataclass
class _Changes:
    """Net changes of one batch, merged per key before they become commands."""

    hashes: dict[str, dict[str, bytes | None]] = field(default_factory=lambda: defaultdict(dict))
    zsets: dict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    counters: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    sets: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    trips: dict[str, dict[str, bytes | None]] = field(default_factory=lambda: defaultdict(dict))

    def hash_put(self, key: str, name: str, value: bytes | None) -> None:
        self.hashes[key][name] = value

    def zset_put(self, key: str, member: str, present: bool) -> None:
        self.zsets[key][member] = present


class ReadModelProjection:
    def __init__(self, redis: Redis, *, stream_max_len: int) -> None:
        self._redis = redis
        self._stream_max_len = stream_max_len
        self.duplicates = 0

    async def plan(self, space: PartitionSpace, records: Sequence[LogRecord]) -> WritePlan:
        plan = WritePlan()
        if not records:
            return plan

        # --- read: what this partition already holds about these identities -------------------
        targets = {
            r.event.key: event_key(*t)
            for r in records
            if (t := retraction_target(r.event)) is not None
        }
        lookup = list(dict.fromkeys([r.event.key for r in records] + list(targets.values())))
        id_fields = list(dict.fromkeys(keyspace.event_id_digest(r.event.id) for r in records))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(space.events, lookup)
            pipe.smismember(space.retracted, lookup)
            pipe.hmget(space.event_ids, id_fields)
            stored_raw, retracted_flags, id_values = await pipe.execute()
        stored: dict[str, bytes] = {k: v for k, v in zip(lookup, stored_raw, strict=True) if v}
        retracted = {k for k, flag in zip(lookup, retracted_flags, strict=True) if flag}
        id_index = {
            f: (v.decode().split(" ") if v else [])
            for f, v in zip(id_fields, id_values, strict=True)
        }

        # --- which records are new identities -------------------------------------------------
        known: dict[str, Event] = {}
        new: list[LogRecord] = []
        for record in records:
            key = record.event.key
            if key in stored or key in known:
                self.duplicates += 1
                continue
            known[key] = record.event
            new.append(record)

        def event_of(key: str) -> Event | None:
            if key in known:
                return known[key]
            raw = stored.get(key)
            if raw is None:
                return None
            event = decode_event(keyspace.decode_stored_event(raw)[1])
            known[key] = event
            return event

        # --- effects -----------------------------------------------------------------------------
        changes = _Changes()
        stored_events: dict[str, bytes] = {}
        for record in new:
            event = record.event
            key = event.key
            stored_events[key] = keyspace.encode_stored_event(record.offset, record.value)
            field_name = keyspace.event_id_digest(event.id)
            if key not in id_index[field_name]:
                id_index[field_name].append(key)
                changes.hash_put(
                    space.event_ids, field_name, " ".join(id_index[field_name]).encode()
                )
            plan.add(
                space.stream,
                "XADD",
                "MAXLEN",
                "~",
                self._stream_max_len,
                keyspace.stream_id(record.offset),
                "e",
                record.value,
                "t",
                event.type,
                "a",
                " ".join(sorted(actors_of(event))),
            )
            if isinstance(event, EventRetracted):
                target_key = targets[key]
                if target_key in retracted:
                    continue  # already retracted: a correction is applied once
                target = event_of(target_key)
                if isinstance(target, EventRetracted):
                    continue  # a retraction of a retraction is void
                retracted.add(target_key)
                changes.sets[space.retracted].add(target_key)
                if target is not None:
                    self._effects(space, changes, target, stored.get(target_key), present=False)
            elif key not in retracted:
                self._effects(space, changes, event, record.value, present=True)
        if stored_events:
            plan.hset(space.events, dict(stored_events))

        await self._trips(space, changes, known, plan)
        self._emit(changes, plan)
        return plan

    def _effects(
        self,
        space: PartitionSpace,
        changes: _Changes,
        event: Event,
        raw: bytes | None,
        *,
        present: bool,
    ) -> None:
        """Add (present) or undo (not present) everything `event` contributes."""
        sign = 1 if present else -1
        key = event.key
        for effect in relation_effects(event).values():
            pair = effect.pair.key
            for name, value in keyspace.day_fields(effect.day, effect.bucket).items():
                changes.counters[(space.relation(pair, "days"), name)] += sign * value
            if effect.status is not None:
                changes.hash_put(
                    space.relation(pair, "status"),
                    key,
                    keyspace.encode_entry(effect.status) if present else None,
                )
            if effect.partnership is not None:
                changes.hash_put(
                    space.relation(pair, "partnership"),
                    key,
                    keyspace.encode_entry(effect.partnership) if present else None,
                )
            if effect.plan is not None:
                changes.hash_put(
                    space.relation(pair, "plans"),
                    key,
                    keyspace.encode_entry(effect.plan) if present else None,
                )
            if effect.contact is not None:
                changes.zset_put(
                    space.relation(pair, "contacts"),
                    keyspace.contact_member(effect.contact),
                    present,
                )
            first, second = effect.pair.first, effect.pair.second
            changes.counters[(space.partners(first), second)] += sign
            changes.counters[(space.partners(second), first)] += sign
        refs = timeline_refs(event)
        member = keyspace.timeline_member(order_string(event), event.type)
        for pair_ in refs.pairs:
            changes.zset_put(space.pair_timeline(pair_.key), member, present)
        for actor in refs.countries:
            changes.zset_put(space.country_timeline(actor), member, present)
        trip = trip_payload(event)
        if trip is not None:
            tk = keyspace.trip_key(trip.traveller.id, trip.trip_id)
            changes.trips[tk][key] = raw if present else None
        if isinstance(event, EnvoyAppointed):
            changes.hash_put(space.person(event.data.person.id), key, raw if present else None)

    async def _trips(
        self,
        space: PartitionSpace,
        changes: _Changes,
        known: dict[str, Event],
        plan: WritePlan,
    ) -> None:
        """Refold every trip the batch touched from its stored events plus the changes."""
        if not changes.trips:
            return
        trip_keys = sorted(changes.trips)
        async with self._redis.pipeline(transaction=False) as pipe:
            for tk in trip_keys:
                pipe.hgetall(space.trip_events(tk))
                pipe.get(space.trip_state(tk))
            replies = await pipe.execute()
        for i, tk in enumerate(trip_keys):
            events_raw: dict[str, bytes] = {k.decode(): v for k, v in replies[2 * i].items()}
            old = keyspace.decode_trip(replies[2 * i + 1]) if replies[2 * i + 1] else None
            for key, raw in changes.trips[tk].items():
                if raw is None:
                    events_raw.pop(key, None)
                    changes.hash_put(space.trip_events(tk), key, None)
                else:
                    events_raw[key] = raw
                    changes.hash_put(space.trip_events(tk), key, raw)
            events = [known.get(k) or decode_event(raw) for k, raw in events_raw.items()]
            new = fold_trip(events) if events else None
            latest = new or old
            person = latest.traveller.id if latest is not None else None
            for country, member in _visit_members(tk, old):
                changes.zset_put(space.visits(country), member, False)
            if new is None:
                plan.add(space.trip_state(tk), "DEL")
                if person is not None:
                    changes.hash_put(space.person_trips(person), tk, None)
                continue
            for country, member in _visit_members(tk, new):
                changes.zset_put(space.visits(country), member, True)
            plan.add(space.trip_state(tk), "SET", keyspace.encode_trip(new))
            first = min(events, key=order_string)
            changes.hash_put(space.person_trips(new.traveller.id), tk, order_string(first).encode())

    def _emit(self, changes: _Changes, plan: WritePlan) -> None:
        for key, fields in changes.hashes.items():
            puts: dict[str, bytes | str | int] = {f: v for f, v in fields.items() if v is not None}
            drops = sorted(f for f, v in fields.items() if v is None)
            if puts:
                plan.hset(key, puts)
            if drops:
                plan.add(key, "HDEL", *drops)
        for key, members in changes.zsets.items():
            plan.zrem(key, [m for m, present in members.items() if not present])
            plan.zadd_lex(key, [m for m, present in members.items() if present])
        for (key, name), delta in changes.counters.items():
            plan.hincrby(key, name, delta, drop_zero=True)
        for key, added in changes.sets.items():
            plan.add(key, "SADD", *sorted(added))


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
