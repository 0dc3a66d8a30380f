"""A batch's net changes, merged per key before they become the plan's operations.

A day bucket gets one HINCRBY per field per batch; an entry added then retracted in the same
batch is never written: the number of operations grows with the keys touched, not with the
events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from chancery import keyspace
from chancery.keyspace import PartitionSpace

from .coded import CodedEvents
from .plan import WritePlan

Value = bytes | str


@dataclass
class NetChanges:
    """Net changes of one batch: None (a hash field) or False (a member) is a removal."""

    hashes: dict[str, dict[str, Value | None]] = field(default_factory=lambda: defaultdict(dict))
    zsets: dict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    counters: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    sets: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # added to
    retracted: set[str] = field(default_factory=set)  # event_keys retracted
    retracted_places: set[int] = field(default_factory=set)  # places of stored ones
    # trip key -> event_key -> the event's bytes (None: no longer part of the trip)
    trips: dict[str, dict[str, bytes | None]] = field(default_factory=lambda: defaultdict(dict))
    coded: CodedEvents | None = None  # the coded events that took the fast path

    def emit(self, space: PartitionSpace, plan: WritePlan) -> None:
        """Append the changes to `plan` as its operations."""
        for key, fields in self.hashes.items():
            puts = {f: v for f, v in fields.items() if v is not None}
            if puts:
                plan.hset(key, puts)
            plan.hdel(key, [f for f, v in fields.items() if v is None])
        removed: set[str] = set()
        for key, members in self.zsets.items():
            gone = [m for m, present in members.items() if not present]
            removed.update(gone)
            plan.zrem(key, gone)
            plan.zadd_lex(key, [m for m, present in members.items() if present])
        if self.coded is not None:
            self.coded.emit(plan, self.counters, self.sets, removed)
        plan.hincrby_each(self.counters)
        for key, added in self.sets.items():
            plan.sadd(key, added)
        if self.retracted_places:
            plan.sadd(space.retracted, [keyspace.place_field(p) for p in self.retracted_places])
