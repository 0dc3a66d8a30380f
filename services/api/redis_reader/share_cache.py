"""Decoded ledger shares, kept per partition while that partition's applied offset holds.

A pair's ledger is the merge of one share per partition. A share changes only when its
partition applies a batch, which moves the partition's `applied` offset in the same atomic
step. So a share decoded at offset X is still exact while the partition is at X, whatever
the other partitions do: a read checks each partition's offset and fetches and decodes
again only the shares whose partition moved. Writes to one partition never invalidate the
others' shares.

This is what keeps `as_of` cheap on a long history: the per-day buckets of a pair with a
long history are decoded once, not on every request.

The two contacts that matter on a reference day (the latest that started before it, the
earliest from it on) are a function of the share's contacts and the day, so they too hold
while the offset holds: they are kept with the share, for the last few days asked about.
A read of a day already asked about then needs nothing from the partition but its offset
(a plain HMGET, no script); a new day costs one small script that reads the two contacts
with the offset (atomically, so they belong to that offset).

Bounded by the number of ledger entries held (days and keyed entries), least recently used
first out.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from cachetools import LRUCache

from chancery.domain import PairLedger

from .relation_scripts import Contacts

DEFAULT_MAX_ENTRIES = 300_000
CONTACT_DAYS_KEPT = 8
"""Reference days whose two contacts are kept per share ("today" and a few as_of days)."""


@dataclass(frozen=True)
class CachedShare:
    applied: int | None  # the partition's applied offset the share was read at
    share: PairLedger  # without contacts; never mutated (PairLedger.merged copies)
    size: int
    contacts: dict[str, Contacts] = field(default_factory=dict)  # day bound -> members

    def keep_contacts(self, bound: str, members: Contacts) -> None:
        """The contacts on `bound`, read at this share's offset. The first day kept is the
        first let go: a plain dict, not a cache object, since there is one per share held
        and the hot read looks a day up in it for every partition."""
        if bound not in self.contacts and len(self.contacts) >= CONTACT_DAYS_KEPT:
            del self.contacts[next(iter(self.contacts))]
        self.contacts[bound] = members


def size_of(share: PairLedger) -> int:
    return 1 + len(share.days) + len(share.statuses) + len(share.partnerships) + len(share.plans)


class ShareCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._held: LRUCache[Hashable, CachedShare] = LRUCache(
            max_entries, getsizeof=lambda cached: cached.size
        )

    def get(self, key: Hashable) -> CachedShare | None:
        return self._held.get(key)

    def put(self, key: Hashable, applied: int | None, share: PairLedger) -> CachedShare:
        """Hold `share`, read at offset `applied`; the entry (held or, if too large, not)."""
        self._held.pop(key, None)
        cached = CachedShare(applied, share, size_of(share))
        if cached.size <= self._held.maxsize:
            self._held[key] = cached
        return cached

    def __len__(self) -> int:
        return len(self._held)
