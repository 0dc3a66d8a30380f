"""Trips a batch touched, refolded whole: from the events stored for each trip, plus the
batch's changes to them, into its state, its place in the traveller's trips and the visits
index of each country it goes to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chancery import keyspace
from chancery.contract import Event, decode_event
from chancery.domain.itineraries import fold_trip
from chancery.domain.ordering import order_string
from chancery.keyspace import PartitionSpace

from .changes import NetChanges
from .plan import WritePlan


def refold_trips(
    space: PartitionSpace,
    trip_keys: Sequence[str],
    replies: Sequence[object],
    *,
    changes: NetChanges,
    known: Mapping[str, Event],
    plan: WritePlan,
) -> None:
    """`replies`: per trip key, the trip's stored events (HGETALL) and its stored state (GET);
    `known`: events of the batch already decoded, by event_key."""
    for i, tk in enumerate(trip_keys):
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
            plan.delete(space.trip_state(tk))
            if person is not None:
                changes.hashes[space.person_trips(person)][tk] = None
            continue
        for country, member in keyspace.visit_members(tk, new):
            changes.zsets[space.visits(country)][member] = True
        plan.set(space.trip_state(tk), keyspace.encode_trip(new))
        first = min(events, key=order_string)
        changes.hashes[space.person_trips(new.traveller.id)][tk] = order_string(first).encode()
