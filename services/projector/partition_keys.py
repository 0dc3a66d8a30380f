"""The keys of one partition space that the fold builds again and again, remembered.

Every keyspace builder validates each part it is given (`keyspace._checked`), and a fold
builds the same few keys (a pair's ledger parts, its timelines, the relation index of each
actor) for event after event.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Generic, TypeVar

from chancery.keyspace import PartitionSpace

CACHE_LIMIT = 50_000
"""Entries a memo of the fold holds at most."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(dict[K, V], Generic[K, V]):
    """A dict that forgets everything once it holds `CACHE_LIMIT` entries.

    For the memos the fold consults once or twice per event: a hit is a plain `dict.get`,
    in C, where a cachetools cache answers through Python methods at several times the cost.
    Their entries are few and repeat (pairs of actors, codes and days), so starting afresh,
    rarely, costs a few misses."""

    def remember(self, key: K, value: V) -> V:
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[key] = value
        return value


class PartitionKeys:
    """`PartitionSpace`'s builders of the keys a fold writes, each remembered."""

    __slots__ = (
        "pair_timeline",
        "partners",
        "relation",
        "solo_timeline",
        "space",
        "timeline_partners",
    )

    def __init__(self, space: PartitionSpace) -> None:
        self.space = space
        self.relation: Callable[[str, str], str] = lru_cache(CACHE_LIMIT)(space.relation)
        self.partners: Callable[[str], str] = lru_cache(CACHE_LIMIT)(space.partners)
        self.pair_timeline: Callable[[str], str] = lru_cache(CACHE_LIMIT)(space.pair_timeline)
        self.solo_timeline: Callable[[str], str] = lru_cache(CACHE_LIMIT)(space.solo_timeline)
        self.timeline_partners: Callable[[str], str] = lru_cache(CACHE_LIMIT)(
            space.timeline_partners
        )
