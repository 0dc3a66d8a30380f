"""Decoded ledger shares, kept per partition while that partition's applied offset holds.

A pair's ledger is the merge of one share per partition. A share changes only when its
partition applies a batch, which moves the partition's `applied` offset in the same atomic
step. So a share decoded at offset X is still exact while the partition is at X, whatever
the other partitions do: a read checks each partition's offset (with the two contacts that
depend on the day asked about, in one small script) and fetches and decodes again only the
shares whose partition moved. Writes to one partition never invalidate the others' shares.

This is what keeps `as_of` cheap on a long history: the per-day buckets of a pair with
100,000 events are decoded once, not on every request. Contacts are not kept: which two
matter depends on the reference day, and they are read each time.

Bounded by the number of ledger entries held (days and keyed entries), least recently used
first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from chancery.domain import PairLedger

DEFAULT_MAX_ENTRIES = 300_000


@dataclass(frozen=True)
class CachedShare:
    applied: int | None  # the partition's applied offset the share was read at
    share: PairLedger  # without contacts; never mutated (PairLedger.merged copies)
    size: int


def size_of(share: PairLedger) -> int:
    return 1 + len(share.days) + len(share.statuses) + len(share.partnerships) + len(share.plans)


class ShareCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max = max_entries
        self._held: OrderedDict[Hashable, CachedShare] = OrderedDict()
        self._total = 0

    def get(self, key: Hashable) -> CachedShare | None:
        cached = self._held.get(key)
        if cached is not None:
            self._held.move_to_end(key)
        return cached

    def put(self, key: Hashable, applied: int | None, share: PairLedger) -> None:
        old = self._held.pop(key, None)
        if old is not None:
            self._total -= old.size
        cached = CachedShare(applied, share, size_of(share))
        if cached.size > self._max:
            return
        self._held[key] = cached
        self._total += cached.size
        while self._total > self._max:
            _, evicted = self._held.popitem(last=False)
            self._total -= evicted.size

    def __len__(self) -> int:
        return len(self._held)
