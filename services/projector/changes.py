"""A batch's net changes, merged per key before they become the plan's operations.

A day bucket gets one HINCRBY per field per batch; an entry added then retracted in the same
batch is never written: the number of operations grows with the keys touched, not with the
events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

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
    retracted: set[str] = field(default_factory=set)
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
            self.coded.emit(plan, self.counters, removed)
        plan.hincrby_each(self.counters)
        if self.retracted:
            plan.sadd(space.retracted, self.retracted)
