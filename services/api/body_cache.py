"""Response bodies kept while the read models they were computed from are unchanged.

A read model changes only when a partition's applied offset moves, and the projector moves
it in the same atomic step as the writes. So a body computed at applied offsets X is still
exactly right while every partition is still at X. The relation read learns every
partition's offset in its own round trip (redis_reader/share_cache.py), so when they are
all unchanged the kept body is served without merging, viewing or encoding again. Any
applied event anywhere makes a kept body stale, so this pays off for read-mostly traffic;
a miss costs nothing more than the work it would have done.

Keyed by everything the body depends on (the pair, today's date, as_of), bounded, least
recently used first out.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

from cachetools import LRUCache

from .reader import Snapshot

DEFAULT_SIZE = 4096


class _Kept(NamedTuple):
    state: tuple[int, tuple[int | None, ...]]  # the version and every partition's offset
    payload: bytes


class BodyCache:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._kept: LRUCache[Hashable, _Kept] = LRUCache(size)

    def get(self, key: Hashable, snapshot: Snapshot) -> bytes | None:
        """The kept body if it was computed at exactly `snapshot`'s version and offsets."""
        kept = self._kept.get(key)
        if kept is None or kept.state != snapshot.state:
            return None
        return kept.payload

    def put(self, key: Hashable, snapshot: Snapshot, payload: bytes) -> None:
        """Keep `payload`, computed from read models at `snapshot`."""
        self._kept[key] = _Kept(snapshot.state, payload)
