"""A page of the union of the partitions' sorted sets, in order: timelines and visits.

Each partition keeps its share of a timeline (or of a country's visits) as a lexicographic
sorted set (every score 0, ordered by member; members start with the domain's sort key, see
services/api/ranges.py). A page is the k-way merge of the partitions' sets, each read in
chunks (ZRANGE ... BYLEX LIMIT) only when the merge has used up what was read of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from .round_trips import Command, RoundTrips

MIN_CHUNK = 64


async def merged_page(
    round_trips: RoundTrips,
    keys: Sequence[str],
    *,
    lo: str,
    hi: str,
    descending: bool,
    limit: int,
    accept: Callable[[str], bool],
) -> tuple[list[tuple[int, str]], bool]:
    """Up to `limit` accepted (partition, member) of the sets under `keys` (one per
    partition) between the ZRANGE BYLEX bounds `lo` and `hi`, in order, and whether one
    more exists."""
    chunk = max(limit + 1, MIN_CHUNK)
    starts = {p: (hi if descending else lo) for p in range(len(keys))}
    buffers: dict[int, deque[str]] = {p: deque() for p in range(len(keys))}
    exhausted: set[int] = set()
    out: list[tuple[int, str]] = []

    def next_chunk(p: int) -> Command:
        if descending:
            return ("ZRANGE", keys[p], starts[p], lo, "BYLEX", "REV", "LIMIT", 0, chunk)
        return ("ZRANGE", keys[p], starts[p], hi, "BYLEX", "LIMIT", 0, chunk)

    while True:
        need = [p for p in range(len(keys)) if not buffers[p] and p not in exhausted]
        if need:
            replies = await round_trips.send(tuple(next_chunk(p) for p in need))
            for p, members in zip(need, replies, strict=True):
                texts = [m.decode() for m in members]
                buffers[p].extend(texts)
                if len(texts) < chunk:
                    exhausted.add(p)
                else:
                    starts[p] = "(" + texts[-1]
        heads = [p for p in range(len(keys)) if buffers[p]]
        if not heads:
            return out, False
        pick = (max if descending else min)(heads, key=lambda p: buffers[p][0])
        member = buffers[pick].popleft()
        if accept(member):
            if len(out) == limit:
                return out, True
            out.append((pick, member))
