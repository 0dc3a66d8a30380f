"""What one event contributes to the read models, added to (or taken from) a batch's changes,
with the shared domain code: its relation effects (ledger parts and the relation index),
its timeline entries (on its pairs' timelines, and its solo actors'), the trip it belongs to
and the person it appoints. Keys and values as `chancery.keyspace` defines them."""

from __future__ import annotations

from chancery import keyspace
from chancery.contract import EnvoyAppointed, Event
from chancery.domain.itineraries import trip_payload
from chancery.domain.ordering import occurred_of
from chancery.domain.relations import relation_effects
from chancery.domain.timelines import TimelineRefs, timeline_refs

from .changes import NetChanges
from .partition_keys import PartitionKeys


def add_effects(
    keys: PartitionKeys,
    changes: NetChanges,
    event: Event,
    ident: str,
    raw: bytes | None,
    *,
    place: int,
    present: bool,
    refs: TimelineRefs | None = None,
) -> None:
    """Add (present) or undo (not present) everything `event` contributes; `raw` is its bytes
    (what the trip and person hashes hold), `place` where it is stored, `refs` its timelines
    if already known."""
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
    order = keyspace.order_code(occurred_of(event), event.source, event.id)
    member = keyspace.stored_timeline_member(order, event.type, place)
    for pair_ in refs.pairs:
        zsets[keys.pair_timeline(pair_.key)][member] = present
        if present:  # the timeline partners index is only ever added to
            changes.sets[keys.timeline_partners(pair_.first)].add(pair_.second)
            changes.sets[keys.timeline_partners(pair_.second)].add(pair_.first)
    for actor in refs.solo:
        zsets[keys.solo_timeline(actor)][member] = present
    trip = trip_payload(event)
    if trip is not None:
        tk = keyspace.trip_key(trip.traveller.id, trip.trip_id)
        changes.trips[tk][ident] = raw if present else None
    if isinstance(event, EnvoyAppointed):
        hashes[keys.space.person(event.data.person.id)][ident] = raw if present else None
