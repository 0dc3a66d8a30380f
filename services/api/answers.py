"""Answers kept while the read models they were computed from are unchanged.

A read model changes only when a partition's applied offset moves, and the projector moves
it in the same atomic step as the writes. So an answer computed at applied offsets X is
still exactly right while every partition is still at X. The relation read learns every
partition's offset in its own round trip (ledger_cache.py), so when they are all unchanged
the stored body is served without merging, viewing or encoding again. Any applied event
anywhere makes a stored answer stale, so this pays off for read-mostly traffic; a miss
costs nothing more than the work it would have done.

Keyed by everything the answer depends on (the pair, today's date, as_of), bounded, least
recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from .reader import Snapshot

DEFAULT_SIZE = 4096


@dataclass(frozen=True)
class _Stored:
    state: tuple[int, tuple[int | None, ...]]  # the version and every partition's offset
    payload: bytes


class AnswerCache:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._stored: OrderedDict[Hashable, _Stored] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, snapshot: Snapshot) -> bytes | None:
        """The stored payload if it was computed at exactly `snapshot`'s version and offsets."""
        stored = self._stored.get(key)
        if stored is None or stored.state != snapshot.state:
            self.misses += 1
            return None
        self._stored.move_to_end(key)
        self.hits += 1
        return stored.payload

    def put(self, key: Hashable, snapshot: Snapshot, payload: bytes) -> None:
        """Keep `payload`, computed from read models at `snapshot`."""
        self._stored[key] = _Stored(snapshot.state, payload)
        self._stored.move_to_end(key)
        while len(self._stored) > self._size:
            self._stored.popitem(last=False)
