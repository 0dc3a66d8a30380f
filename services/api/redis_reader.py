"""The API's Redis adapter: reads what the projector wrote, per partition, and merges it.

Each read resolves the served version once: the same round trip carries the pointer, the
version's state, every partition's applied offset and high watermark, and the data commands
for the version the reader last saw served. If the pointer moved, or the version is not
`ready` (Redis emptied and the projector started over), the answer is thrown away and the
read redone for the version now served, or NotReadyError is raised: a partial version is
never served. In the steady state a read is one round trip.

The relation read is the hot path (redis_relations.py). Decoded shares, with the contacts
that matter on the days asked about, are held while their partition's offset holds
(ledger_cache.py), so a read of a pair asked about before is the version check and one
HMGET of each partition's offset: no script, nothing to decode, and when every offset is
where the last read of that pair and day found it, that read's answer (`_readings`). A
partition that moved, or a share not held, is read with a small Lua script over that
partition's keys only (so every call stays within one slot, as Redis Cluster needs). Its
commands go out packed once, on connections the reader holds (redis_lane.py), which costs
a fraction of redis-py's Pipeline and pool. Other reads use a Pipeline.

Nothing here decides what a relation or a trip is: values are decoded with chancery.keyspace
and folded by chancery.domain, as the projector folds them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from chancery import keyspace
from chancery.contract import (
    Event,
    EventRetracted,
    day_bound,
    decode_event,
)
from chancery.domain import PairLedger, Trip, pairs_of
from chancery.domain.itineraries import trip_payload
from chancery.domain.relations import Pair
from chancery.keyspace import PartitionSpace
from chancery.positions import Position

from .ledger_cache import CachedShare, ShareCache
from .ranges import lex_bounds
from .reader import (
    NotReadyError,
    Page,
    PartitionProgress,
    PersonRecord,
    PositionTimeoutError,
    ReadResult,
    Snapshot,
    StoredEvent,
    StreamBatch,
    StreamEntry,
    StreamGoneError,
    TimelineEntry,
    TimelineQuery,
    VisitEntry,
    VisitQuery,
)
from .redis_lane import Commands, Lane
from .redis_relations import (
    CHECK_SCRIPT,
    SHARE_SCRIPT,
    Ledgers,
    below,
    number,
    pairs,
    relation_keys,
    share_of,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

WAIT_SLICE_S = 0.1
"""Longest single block while waiting for a position (an offset parked as a dead letter
has no stream entry to wake us, so the offsets are re-checked at least this often)."""
WAIT_COUNT = 100
RESOLVE_ATTEMPTS = 3
READINGS_KEPT = 64
"""Reads of one pair remembered with the offsets they were read at ((pair, day) -> the
last): while every offset holds, the next read of that pair on that day is the same
reading. Few: each keeps its shares (and merged ledger) alive beside the share cache."""
_OFFSET, _CONTACTS, _SHARE = 0, 1, 2
"""What a relation read asks of a partition for a pair: only its offset (the share and its
contacts on the day are held), the day's contacts with the offset (the share is held), or
the whole share (CHECK_SCRIPT and SHARE_SCRIPT)."""


@dataclass(frozen=True)
class _Layout:
    """The served version as last seen: its number, identity and partition spaces."""

    version: int
    created: bytes | None
    spaces: tuple[PartitionSpace, ...]


class RedisReadModelReader:
    def __init__(
        self, redis: Redis, blocking: Redis, *, topic: str, hot: Redis | None = None
    ) -> None:
        """`blocking` serves XREAD BLOCK (a pool of its own, so waits never starve reads);
        `hot` the relation reads and snapshots (see redis_lane.py; `redis` if not given)."""
        self._redis = redis
        self._blocking = blocking
        self._lane = Lane(hot or redis)
        self._topic = topic
        self._layout: _Layout | None = None
        self._share_sha: str | None = None
        self._check_sha: str | None = None
        self._shares = ShareCache()
        self._last: tuple[Hashable, Snapshot] | None = None
        self._readings: dict[
            tuple[tuple[str, ...], str],
            tuple[tuple[Any, ...], ReadResult[Mapping[Pair, PairLedger]]],
        ] = {}

    @property
    def topic(self) -> str:
        return self._topic

    async def start(self) -> None:
        await self._load_scripts()

    async def _load_scripts(self) -> None:
        self._share_sha = str(await self._redis.script_load(SHARE_SCRIPT))
        self._check_sha = str(await self._redis.script_load(CHECK_SCRIPT))

    async def _send(self, commands: Commands) -> list[Any]:
        """The commands in one round trip on the lane (redis-py's Pipeline costs about twice
        the CPU for the relation read: its per-command bookkeeping and callbacks)."""
        return await self._lane.send(commands, lambda: commands)

    def _snapshot(self, version: int, applied: list[int | None], high: list[int]) -> Snapshot:
        """The snapshot of these offsets: the one handed out last while nothing moved (what
        is derived from a snapshot is then computed once for a run of reads)."""
        key = (version, *applied, *high)
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        progress = tuple(PartitionProgress(p, offset, high[p]) for p, offset in enumerate(applied))
        snapshot = Snapshot(version, self._topic, progress)
        self._last = (key, snapshot)
        return snapshot

    # --- versions and snapshots ------------------------------------------------------------

    async def _resolve(self) -> _Layout:
        active = await self._redis.get(keyspace.ACTIVE_VERSION)
        if active is None:
            raise NotReadyError(None, "missing")
        version = int(active)
        meta = await self._redis.hgetall(keyspace.version_meta(version))
        if not meta or b"partitions" not in meta:
            raise NotReadyError(version, "missing")
        spaces = tuple(PartitionSpace(version, p) for p in range(int(meta[b"partitions"])))
        if meta.get(b"state") != b"ready":
            raise NotReadyError(version, "building", await self._progress(spaces))
        created = meta.get(b"created_ms")
        layout = _Layout(version, created if isinstance(created, bytes) else None, spaces)
        self._layout = layout
        return layout

    async def _progress(self, spaces: Sequence[PartitionSpace]) -> tuple[PartitionProgress, ...]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for space in spaces:
                pipe.get(space.offset)
                pipe.hget(space.progress, "high_watermark")
            replies = await pipe.execute()
        return tuple(
            _progress(space.partition, replies[2 * i], replies[2 * i + 1])
            for i, space in enumerate(spaces)
        )

    def _head(self, pipe: Pipeline, layout: _Layout) -> None:
        pipe.get(keyspace.ACTIVE_VERSION)
        pipe.hmget(keyspace.version_meta(layout.version), ["state", "created_ms"])

    def _still_served(self, layout: _Layout, active: bytes | None, meta: list[Any]) -> bool:
        served = (
            active is not None
            and int(active) == layout.version
            and meta[0] == b"ready"
            and meta[1] == layout.created
        )
        if not served:
            self._layout = None
        return served

    async def _read(
        self, fill: Callable[[Pipeline, _Layout], Callable[[list[Any]], T]]
    ) -> tuple[T, Snapshot, _Layout]:
        """One pipeline: the version check, every partition's position, then `fill`'s commands.

        `fill` queues its commands and returns the parser of their replies.
        """
        for _ in range(RESOLVE_ATTEMPTS):
            layout = self._layout or await self._resolve()
            async with self._redis.pipeline(transaction=False) as pipe:
                self._head(pipe, layout)
                for space in layout.spaces:
                    pipe.get(space.offset)
                    pipe.hget(space.progress, "high_watermark")
                parse = fill(pipe, layout)
                replies = await pipe.execute()
            if not self._still_served(layout, replies[0], replies[1]):
                continue
            n = 2 + 2 * len(layout.spaces)
            progress = tuple(
                _progress(space.partition, replies[2 + 2 * i], replies[3 + 2 * i])
                for i, space in enumerate(layout.spaces)
            )
            return parse(replies[n:]), Snapshot(layout.version, self._topic, progress), layout
        raise NotReadyError(None, "missing")

    async def snapshot(self) -> Snapshot:
        snapshot, _ = await self._snapshot_and_layout()
        return snapshot

    async def _snapshot_and_layout(self) -> tuple[Snapshot, _Layout]:
        """The served version and every partition's progress: one prepacked round trip."""
        for _ in range(RESOLVE_ATTEMPTS):
            layout = self._layout or await self._resolve()
            commands: list[tuple[str | int, ...]] = [
                ("GET", keyspace.ACTIVE_VERSION),
                ("HMGET", keyspace.version_meta(layout.version), "state", "created_ms"),
            ]
            for space in layout.spaces:
                # `applied` is written with the offset key, in the same atomic step.
                commands.append(("HMGET", space.progress, "applied", "high_watermark"))
            replies = await self._send(tuple(commands))
            if not self._still_served(layout, replies[0], replies[1]):
                continue
            offsets = replies[2:]
            applied = [number(reply[0]) for reply in offsets]
            high = [number(reply[1]) or 0 for reply in offsets]
            return self._snapshot(layout.version, applied, high), layout
        raise NotReadyError(None, "missing")

    async def wait_for(
        self, position: Position, timeout_s: float, *, known: Snapshot | None = None
    ) -> Snapshot:
        """Block on the lagging partitions' streams (XREAD from their applied offsets) until
        their entries reach `position`; re-read the offsets at least every WAIT_SLICE_S (an
        offset parked as a dead letter, or a duplicate, has no entry to wake us)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout_s
        snapshot = known
        while True:
            if snapshot is None:
                snapshot, _ = await self._snapshot_and_layout()
            if snapshot.covers(position):
                return snapshot
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PositionTimeoutError(position, snapshot, loop.time() - started)
            layout = self._layout or await self._resolve()
            applied = dict(snapshot.applied)
            lagging = [
                p
                for p, offset in position
                if p < len(layout.spaces) and applied.get(p, -1) < offset
            ]
            while lagging and (block_ms := int((deadline - loop.time()) * 1000)) > 0:
                streams: dict[str | bytes, str] = {
                    layout.spaces[p].stream: (
                        keyspace.stream_id(applied[p]) if p in applied else "0-0"
                    )
                    for p in lagging
                }
                replies: Any = await self._blocking.xread(
                    streams,  # type: ignore[arg-type]
                    count=WAIT_COUNT,
                    block=max(1, min(block_ms, int(WAIT_SLICE_S * 1000))),
                )
                if not replies:
                    break  # a slice without entries: re-read the offsets
                by_stream = {s.stream.encode(): s.partition for s in layout.spaces}
                for name, entries in replies:
                    if entries:
                        p = by_stream[name if isinstance(name, bytes) else name.encode()]
                        applied[p] = keyspace.offset_of_stream_id(entries[-1][0])
                # an entry is added in the same atomic step that applies its offset
                lagging = [p for p in lagging if applied.get(p, -1) < position.offsets[p]]
            if not lagging:
                progress = tuple(
                    PartitionProgress(
                        pp.partition,
                        applied.get(pp.partition, pp.applied),
                        max(pp.high_watermark, applied.get(pp.partition, -1) + 1),
                    )
                    for pp in snapshot.progress
                )
                return Snapshot(snapshot.version, snapshot.topic, progress)
            snapshot = None

    # --- relations ---------------------------------------------------------------------------

    async def pair_ledgers(
        self, pairs: Sequence[Pair], reference: date
    ) -> ReadResult[Mapping[Pair, PairLedger]]:
        if self._share_sha is None:
            await self._load_scripts()
        try:
            return await self._pair_ledgers(pairs, reference)
        except NoScriptError:
            await self._load_scripts()  # Redis restarted and lost its scripts
            return await self._pair_ledgers(pairs, reference)

    async def _pair_ledgers(
        self, pairs: Sequence[Pair], reference: date
    ) -> ReadResult[Mapping[Pair, PairLedger]]:
        """Each pair's share of each partition, merged. One round trip when the shares are
        held decoded and still current (see ledger_cache.py), two when some moved."""
        if not pairs:
            return ReadResult(Ledgers({}), await self.snapshot())
        bound = _bound(reference)
        share_sha, check_sha = self._share_sha, self._check_sha
        assert share_sha is not None
        assert check_sha is not None
        names = tuple(pair.key for pair in pairs)
        for _ in range(RESOLVE_ATTEMPTS):
            layout = self._layout or await self._resolve()
            count = len(layout.spaces)
            version, created = layout.version, layout.created
            last = self._readings.get((names, bound))
            held: list[CachedShare | None]
            if last is not None and last[0][:2] == (version, created):
                # Read before on this day: ask only for the offsets, and look at the held
                # shares only if one moved.
                held = []
                kinds = (_OFFSET,) * (len(names) * count)
            else:
                last = None
                held = [
                    self._shares.get((version, created, p, name))
                    for name in names
                    for p in range(count)
                ]
                kinds = tuple(
                    _SHARE if h is None else _OFFSET if bound in h.contacts else _CONTACTS
                    for h in held
                )

            def build(
                layout: _Layout = layout, kinds: tuple[int, ...] = kinds, count: int = count
            ) -> Commands:
                commands: list[tuple[str | int, ...]] = [
                    ("GET", keyspace.ACTIVE_VERSION),
                    ("HMGET", keyspace.version_meta(layout.version), "state", "created_ms"),
                ]
                for i, kind in enumerate(kinds):
                    n, p = divmod(i, count)
                    keys = relation_keys(layout.version, count, names[n])[p]
                    if kind == _OFFSET:
                        commands.append(("HMGET", keys[5], "applied", "high_watermark"))
                    elif kind == _CONTACTS:
                        commands.append(("EVALSHA", check_sha, 2, keys[4], keys[5], bound))
                    else:
                        commands.append(("EVALSHA", share_sha, 6, *keys, bound))
                return tuple(commands)

            replies = await self._lane.send(("relations", version, names, bound, kinds), build)
            if not self._still_served(layout, replies[0], replies[1]):
                continue
            replies = replies[2:]
            if last is not None:
                # If every offset is where the last read of these pairs on this day found
                # it, that read's answer is this one's.
                if last[0] == (version, created, *chain(*replies)):
                    return last[1]
                held = [
                    self._shares.get((version, created, p, name))
                    for name in names
                    for p in range(count)
                ]
            fetched = list(kinds)
            stale = [
                i
                for i, (cached, kind, reply) in enumerate(zip(held, kinds, replies, strict=True))
                if (cached is None and kind != _SHARE)
                or (kind == _OFFSET and cached is not None and bound not in cached.contacts)
                or (
                    cached is not None
                    and number(reply[0] if kind == _OFFSET else reply[2]) != cached.applied
                )
            ]
            if stale:  # not held, or the partition moved since the share was read: read it
                fresh = await self._send(
                    tuple(
                        (
                            "EVALSHA",
                            share_sha,
                            6,
                            *relation_keys(version, count, names[i // count])[i % count],
                            bound,
                        )
                        for i in stale
                    )
                )
                for i, reply in zip(stale, fresh, strict=True):
                    fetched[i] = _SHARE
                    replies[i] = reply
            shares: list[list[tuple[PairLedger, tuple[bytes, ...]]]] = [[] for _ in pairs]
            applied: list[int | None] = [None] * count
            high = [0] * count
            read_at: list[bytes | None] = []  # each share's applied and high, as replied
            for i, (kind, reply) in enumerate(zip(fetched, replies, strict=True)):
                n, p = divmod(i, count)
                if kind == _SHARE:
                    position = reply[6:8]
                    members = (*reply[4], *reply[5])
                    cached = self._shares.put(
                        (version, created, p, names[n]), number(position[0]), share_of(reply)
                    )
                    cached.keep_contacts(bound, members)
                else:
                    kept = held[i]
                    assert kept is not None
                    cached = kept
                    if kind == _CONTACTS:
                        position = reply[2:4]
                        members = (*reply[0], *reply[1])
                        cached.keep_contacts(bound, members)
                    else:
                        position = reply
                        members = cached.contacts[bound]
                read_at += position
                share = cached.share
                if members or not share.is_empty:
                    shares[n].append((share, members))
                # per partition, the smallest offset any read saw: every pair covers it
                offset = number(position[0])
                if n == 0 or below(offset, applied[p]):
                    applied[p] = offset
                high[p] = max(high[p], number(position[1]) or 0)
            ledgers = Ledgers({pair: shares[n] for n, pair in enumerate(pairs)})
            reading: ReadResult[Mapping[Pair, PairLedger]] = ReadResult(
                ledgers, self._snapshot(version, applied, high)
            )
            if len(pairs) == 1:
                if len(self._readings) >= READINGS_KEPT:
                    del self._readings[next(iter(self._readings))]  # the oldest
                self._readings[(names, bound)] = ((version, created, *read_at), reading)
            return reading
        raise NotReadyError(None, "missing")

    async def pair_history(self, pair: Pair, known_at: datetime) -> ReadResult[list[Event]]:
        def fill(pipe: Pipeline, layout: _Layout) -> Callable[[list[Any]], list[list[bytes]]]:
            for space in layout.spaces:
                pipe.zrange(space.pair_timeline(pair.key), 0, -1)
            return lambda replies: replies

        members, snapshot, layout = await self._read(fill)
        keys = [
            [keyspace.decode_timeline_member(m).event_key for m in per_partition]
            for per_partition in members
        ]
        events = await self._with_retracted(layout, keys, known_at, lambda e: pair in pairs_of(e))
        return ReadResult(events, snapshot)

    async def partners(self, country: str) -> ReadResult[dict[str, int]]:
        def fill(pipe: Pipeline, layout: _Layout) -> Callable[[list[Any]], dict[str, int]]:
            for space in layout.spaces:
                pipe.hgetall(space.partners(country))

            def parse(replies: list[Any]) -> dict[str, int]:
                counts: dict[str, int] = {}
                for reply in replies:
                    for partner, n in reply.items():
                        name = partner.decode()
                        counts[name] = counts.get(name, 0) + int(n)
                return {k: v for k, v in counts.items() if v > 0}

            return parse

        value, snapshot, _ = await self._read(fill)
        return ReadResult(value, snapshot)

    # --- timelines ---------------------------------------------------------------------------

    async def timeline(self, query: TimelineQuery) -> ReadResult[Page[TimelineEntry]]:
        def key_of(space: PartitionSpace) -> str:
            if query.kind == "pair":
                return space.pair_timeline(query.key)
            return space.country_timeline(query.key)

        types = query.types

        def accept(member: str) -> bool:
            return types is None or member.rsplit(" ", 1)[1] in types

        snapshot, layout = await self._snapshot_and_layout()
        lo, hi = lex_bounds(query.start, query.end, query.after, query.descending)
        found, more = await self._merged_page(
            [key_of(s) for s in layout.spaces],
            lo=lo,
            hi=hi,
            descending=query.descending,
            limit=query.limit,
            accept=accept,
        )
        keyed = [(p, keyspace.decode_timeline_member(m.encode()).event_key) for p, m in found]
        stored = await self._load_events(layout, keyed)
        items = [
            TimelineEntry(member, stored[key])
            for (p, member), (_, key) in zip(found, keyed, strict=True)
            if key in stored
        ]
        return ReadResult(Page(items, more), snapshot)

    async def _merged_page(
        self,
        keys: Sequence[str],
        *,
        lo: str,
        hi: str,
        descending: bool,
        limit: int,
        accept: Callable[[str], bool],
    ) -> tuple[list[tuple[int, str]], bool]:
        """Up to `limit` accepted members of the union of the partitions' lex sets, in
        order, and whether one more exists. Each partition is read in chunks, only when the
        merge has used up what was read of it."""
        chunk = max(limit + 1, 64)
        starts = {p: (hi if descending else lo) for p in range(len(keys))}
        buffers: dict[int, deque[str]] = {p: deque() for p in range(len(keys))}
        exhausted: set[int] = set()
        out: list[tuple[int, str]] = []
        while True:
            need = [p for p in range(len(keys)) if not buffers[p] and p not in exhausted]
            if need:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for p in need:
                        if descending:
                            pipe.zrange(
                                keys[p], starts[p], lo, bylex=True, desc=True, offset=0, num=chunk
                            )
                        else:
                            pipe.zrange(keys[p], starts[p], hi, bylex=True, offset=0, num=chunk)
                    replies = await pipe.execute()
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

    async def _load_events(
        self, layout: _Layout, keyed: Sequence[tuple[int, str]]
    ) -> dict[str, StoredEvent]:
        """event_key -> stored event, from each key's own partition, with its retracted flag."""
        by_partition: dict[int, list[str]] = {}
        for p, key in keyed:
            by_partition.setdefault(p, []).append(key)
        if not by_partition:
            return {}
        order = sorted(by_partition)
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in order:
                space = layout.spaces[p]
                pipe.hmget(space.events, by_partition[p])
                pipe.smismember(space.retracted, by_partition[p])
            replies = await pipe.execute()
        out: dict[str, StoredEvent] = {}
        for i, p in enumerate(order):
            for key, raw, flag in zip(
                by_partition[p], replies[2 * i], replies[2 * i + 1], strict=True
            ):
                if raw is None:
                    continue
                offset, body = keyspace.decode_stored_event(raw)
                out[key] = StoredEvent(decode_event(body), body, p, offset, bool(flag))
        return out

    async def _with_retracted(
        self,
        layout: _Layout,
        keys: Sequence[Sequence[str]],
        known_at: datetime | None,
        concerns: Callable[[Event], bool],
    ) -> list[Event]:
        """The events under `keys` (per partition); with `known_at`, also every retracted
        event that `concerns` the query and was recorded by then, with its retraction."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for p, space in enumerate(layout.spaces):
                if keys[p]:
                    pipe.hmget(space.events, list(keys[p]))
                else:
                    pipe.echo(b"")
                if known_at is not None:
                    pipe.smembers(space.retracted)
            replies = await pipe.execute()
        step = 2 if known_at is not None else 1
        events: list[Event] = []
        retracted: list[tuple[int, str]] = []
        for p in range(len(layout.spaces)):
            if keys[p]:
                for raw in replies[step * p]:
                    if raw is not None:
                        events.append(decode_event(keyspace.decode_stored_event(raw)[1]))
            if known_at is not None:
                retracted.extend((p, k.decode()) for k in replies[step * p + 1])
        if known_at is None or not retracted:
            return events
        stored = await self._load_events(layout, retracted)
        for key, item in stored.items():
            event = item.event
            if isinstance(event, EventRetracted) or not concerns(event):
                continue
            if event.recordedtime is None or event.recordedtime > known_at:
                continue  # not known at `known_at` anyway
            retraction = await self._retraction_of(layout.spaces[item.partition], event, item)
            if retraction is None:
                logger.warning(
                    "the retraction of %s is no longer in the stream; leaving the event out",
                    key,
                )
                continue
            events.extend((event, retraction))
        return events

    async def _retraction_of(
        self, space: PartitionSpace, target: Event, stored: StoredEvent
    ) -> Event | None:
        """The retraction of `target`: the projector maps each retracted event to the
        retraction that took effect, in the partition they share (`retractions`)."""
        key = await self._redis.hget(space.retractions, target.key)
        raw = await self._redis.hget(space.events, key) if key is not None else None
        if not isinstance(raw, bytes):
            return None
        return decode_event(keyspace.decode_stored_event(raw)[1])

    # --- people, trips and visits ----------------------------------------------------------

    async def _trip_index(self, person_id: str) -> tuple[list[tuple[int, str, str]], Snapshot]:
        """(partition, trip key, first order string) of each of the person's trips."""

        def fill(pipe: Pipeline, layout: _Layout) -> Callable[[list[Any]], list[Any]]:
            for space in layout.spaces:
                pipe.hgetall(space.person_trips(person_id))
            return lambda replies: replies

        replies, snapshot, _ = await self._read(fill)
        index = [
            (p, tk.decode(), first.decode())
            for p, reply in enumerate(replies)
            for tk, first in reply.items()
        ]
        index.sort(key=lambda item: (item[2], item[1]))
        return index, snapshot

    async def _trip_states(
        self, layout: _Layout, keyed: Sequence[tuple[int, str]]
    ) -> dict[tuple[int, str], Trip]:
        if not keyed:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for p, tk in keyed:
                pipe.get(layout.spaces[p].trip_state(tk))
            replies = await pipe.execute()
        return {
            item: keyspace.decode_trip(raw)
            for item, raw in zip(keyed, replies, strict=True)
            if raw is not None
        }

    async def trips(self, person_id: str) -> ReadResult[list[Trip]]:
        index, snapshot = await self._trip_index(person_id)
        layout = self._layout_for(snapshot)
        states = await self._trip_states(layout, [(p, tk) for p, tk, _ in index])
        return ReadResult([states[(p, tk)] for p, tk, _ in index if (p, tk) in states], snapshot)

    def _layout_for(self, snapshot: Snapshot) -> _Layout:
        layout = self._layout
        if layout is None or layout.version != snapshot.version:
            spaces = tuple(PartitionSpace(snapshot.version, p) for p in range(snapshot.partitions))
            return _Layout(snapshot.version, None, spaces)
        return layout

    async def trip_history(
        self, person_id: str, known_at: datetime | None
    ) -> ReadResult[list[Event]]:
        index, snapshot = await self._trip_index(person_id)
        layout = self._layout_for(snapshot)
        keys: list[list[str]] = [[] for _ in layout.spaces]
        if index:
            async with self._redis.pipeline(transaction=False) as pipe:
                for p, tk, _ in index:
                    pipe.hkeys(layout.spaces[p].trip_events(tk))
                replies = await pipe.execute()
            for (p, _, _), names in zip(index, replies, strict=True):
                keys[p].extend(n.decode() for n in names)

        def concerns(event: Event) -> bool:
            data = trip_payload(event)
            return data is not None and data.traveller.id == person_id

        events = await self._with_retracted(layout, keys, known_at, concerns)
        return ReadResult(events, snapshot)

    async def visits(self, query: VisitQuery) -> ReadResult[Page[VisitEntry]]:
        direction = query.direction

        def accept(member: str) -> bool:
            return direction is None or member.endswith(" " + direction)

        snapshot, layout = await self._snapshot_and_layout()
        lo, hi = lex_bounds(query.start, query.end, query.after, descending=False)
        found, more = await self._merged_page(
            [s.visits(query.country) for s in layout.spaces],
            lo=lo,
            hi=hi,
            descending=False,
            limit=query.limit,
            accept=accept,
        )
        items = [(p, keyspace.decode_visit_member(m.encode())) for p, m in found]
        states = await self._trip_states(
            layout, list(dict.fromkeys((p, v.trip_key) for p, v in items))
        )
        entries = [
            VisitEntry(
                member=member,
                sort_key=v.sort_key,
                trip_key=v.trip_key,
                country=v.country,
                direction="to" if v.direction == "to" else "from",
                trip=states.get((p, v.trip_key)),
            )
            for (p, v), (_, member) in zip(items, found, strict=True)
        ]
        return ReadResult(Page(entries, more), snapshot)

    async def person(self, person_id: str) -> ReadResult[PersonRecord]:
        def fill(pipe: Pipeline, layout: _Layout) -> Callable[[list[Any]], list[Any]]:
            for space in layout.spaces:
                pipe.hgetall(space.person(person_id))
            return lambda replies: replies

        replies, snapshot, _ = await self._read(fill)
        # The person hash holds each appointment as the log's event JSON.
        appointments = [decode_event(raw) for reply in replies for raw in reply.values()]
        trips = await self.trips(person_id)
        return ReadResult(
            PersonRecord(appointments=appointments, trips=trips.value),
            snapshot.later(trips.snapshot),
        )

    # --- events ----------------------------------------------------------------------------

    async def events_by_id(self, event_id: str) -> ReadResult[list[StoredEvent]]:
        id_field = keyspace.event_id_field(event_id)

        def fill(pipe: Pipeline, layout: _Layout) -> Callable[[list[Any]], list[Any]]:
            for space in layout.spaces:
                pipe.hget(space.event_ids, id_field)
            return lambda replies: replies

        replies, snapshot, layout = await self._read(fill)
        keyed = [
            (p, key)
            for p, reply in enumerate(replies)
            if reply
            for key in reply.decode().split(" ")
        ]
        stored = await self._load_events(layout, keyed)
        found = [stored[key] for _, key in keyed if key in stored]
        found.sort(key=lambda s: (s.event.source, s.partition, s.offset))
        return ReadResult(found, snapshot)

    # --- the stream of applied events ------------------------------------------------------

    async def stream_retained(self, after: Mapping[int, int]) -> None:
        layout = self._layout or await self._resolve()
        wanted = [(p, o) for p, o in after.items() if p < len(layout.spaces)]
        if not wanted:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for p, _ in wanted:
                pipe.execute_command("XINFO", "STREAM", layout.spaces[p].stream)
            replies = await pipe.execute(raise_on_error=False)
        for (p, offset), reply in zip(wanted, replies, strict=True):
            if isinstance(reply, Exception):
                continue  # no stream yet: nothing was trimmed
            retained_from = _retained_from(pairs(reply))
            if retained_from is not None and offset + 1 < retained_from:
                raise StreamGoneError(p, offset, retained_from)

    async def stream_read(
        self, after: Mapping[int, int | None], *, block_ms: int, count: int
    ) -> StreamBatch:
        layout = self._layout or await self._resolve()
        partitions = {space.stream.encode(): space.partition for space in layout.spaces}
        streams: dict[str | bytes, str] = {
            space.stream: (
                keyspace.stream_id(offset)
                if (offset := after.get(space.partition)) is not None
                else "0-0"
            )
            for space in layout.spaces
        }
        replies: Any = await self._blocking.xread(
            streams,  # type: ignore[arg-type]
            count=count,
            block=max(1, block_ms),
        )
        read: list[tuple[int, Any, dict[bytes, bytes]]] = []
        keys: dict[int, list[bytes]] = {}
        for name, items in replies or []:
            p = partitions[name if isinstance(name, bytes) else name.encode()]
            for entry_id, fields in items:
                read.append((p, entry_id, fields))
                if keyspace.STREAM_KEY in fields:
                    keys.setdefault(p, []).append(fields[keyspace.STREAM_KEY])
        # An entry names its event (`k`), which is in its partition's `events` hash.
        bodies: dict[bytes, bytes] = {}
        if keys:
            async with self._redis.pipeline(transaction=False) as pipe:
                for p, wanted in keys.items():
                    pipe.hmget(layout.spaces[p].events, wanted)
                for wanted, values in zip(keys.values(), await pipe.execute(), strict=True):
                    for k, v in zip(wanted, values, strict=True):
                        if v is not None:
                            bodies[k] = keyspace.decode_stored_event(v)[1]
        entries: list[StreamEntry] = []
        for p, entry_id, fields in read:
            key = fields.get(keyspace.STREAM_KEY)
            raw = fields.get(keyspace.STREAM_EVENT) if key is None else bodies.get(key)
            if raw is None:  # written with its entry: gone only with the version's keys
                raise NotReadyError(layout.version, "missing")
            entries.append(
                StreamEntry(
                    partition=p,
                    offset=keyspace.offset_of_stream_id(entry_id),
                    type=fields.get(keyspace.STREAM_TYPE, b"").decode(),
                    actors=frozenset(fields.get(keyspace.STREAM_ACTORS, b"").decode().split()),
                    raw=raw,
                )
            )
        return StreamBatch(entries)


# --- helpers ------------------------------------------------------------------------------------


def _progress(partition: int, offset: bytes | None, high: bytes | None) -> PartitionProgress:
    return PartitionProgress(
        partition,
        int(offset) if offset else None,
        int(high) if high else 0,
    )


@functools.lru_cache(maxsize=1024)
def _bound(reference: date) -> str:
    """`day_bound`, kept (every read of a day asks for it)."""
    return day_bound(reference)


def _retained_from(info: dict[bytes, Any]) -> int | None:
    """The first offset a trimmed stream still holds; None if nothing was ever trimmed.

    Trimming (MAXLEN) removes from the head: when fewer entries remain than were added,
    everything before the first remaining entry may be gone.
    """
    added = int(info.get(b"entries-added") or 0)
    length = int(info.get(b"length") or 0)
    if added <= length:
        return None
    if length == 0:
        return keyspace.offset_of_stream_id(info[b"last-generated-id"]) + 1
    first = info.get(b"recorded-first-entry-id")
    if first is None:
        return None
    return keyspace.offset_of_stream_id(first)
