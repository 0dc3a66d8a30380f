"""The API's Redis adapter: reads what the projector wrote, per partition, and merges it.

Each read resolves the served version once: the same round trip carries the pointer, the
version's state, every partition's applied offset and high watermark, and the data commands
for the version the reader last saw served. If the pointer moved, or the version is not
`ready` (Redis emptied and the projector started over), the answer is thrown away and the
read redone for the version now served, or NotReadyError is raised: a partial version is
never served. In the steady state a read is one round trip.

The relation read is the hot path (redis_relations.py): one small Lua script per partition,
each over that partition's keys only, so it runs on Redis Cluster too; decoded shares are
held between reads while their partition's offset holds (ledger_cache.py). Its commands go
out packed by hand on one pooled connection (`_send`), which costs about half the CPU of
redis-py's Pipeline. Other reads use a Pipeline.

Nothing here decides what a relation or a trip is: values are decoded with chancery.keyspace
and folded by chancery.domain, as the projector folds them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chancery import keyspace
from chancery.contract import (
    Event,
    EventRetracted,
    day_bound,
    decode_event,
    retraction_target,
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
    Reading,
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

RETRACTED_TYPE = "diplomacy.event.retracted"
WAIT_SLICE_S = 0.1
"""Longest single block while waiting for a position (an offset parked as a dead letter
has no stream entry to wake us, so the offsets are re-checked at least this often)."""
WAIT_COUNT = 100
SCAN_CHUNK = 500
RESOLVE_ATTEMPTS = 3
PACKED_CACHE = 4096
"""Relation reads kept packed (the same pair on the same day packs to the same bytes)."""


@dataclass(frozen=True)
class _Layout:
    """The served version as last seen: its number, identity and partition spaces."""

    version: int
    created: bytes | None
    spaces: tuple[PartitionSpace, ...]


class RedisReadModelReader:
    def __init__(self, redis: Redis, blocking: Redis, *, topic: str) -> None:
        """`blocking` serves XREAD BLOCK (a pool of its own, so waits never starve reads)."""
        self._redis = redis
        self._blocking = blocking
        self._topic = topic
        self._layout: _Layout | None = None
        self._share_sha: str | None = None
        self._check_sha: str | None = None
        self._shares = ShareCache()
        self._packed: dict[tuple[tuple[str | int, ...], ...], list[bytes]] = {}

    @property
    def topic(self) -> str:
        return self._topic

    async def start(self) -> None:
        await self._load_scripts()

    async def _load_scripts(self) -> None:
        self._share_sha = str(await self._redis.script_load(SHARE_SCRIPT))
        self._check_sha = str(await self._redis.script_load(CHECK_SCRIPT))

    async def _send(self, commands: tuple[tuple[str | int, ...], ...]) -> list[Any]:
        """The commands on one pooled connection, packed by hand: the hot path's pipeline.

        redis-py's Pipeline costs about twice the CPU of this for the relation read (its
        per-command bookkeeping and callbacks); here a reply that is an error is read past
        (so the connection stays in step) and raised once every reply is in.
        """
        for attempt in range(2):
            pool = self._redis.connection_pool
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                packed = self._packed.get(commands)
                if packed is None:
                    if len(self._packed) >= PACKED_CACHE:
                        self._packed.clear()
                    packed = self._packed[commands] = conn.pack_commands(commands)
                await conn.send_packed_command(packed)
                replies: list[Any] = []
                error: ResponseError | None = None
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        error = error or exc
                        replies.append(exc)
                if error is not None:
                    raise error
                return replies
            except (RedisConnectionError, RedisTimeoutError):
                await conn.disconnect()
                if attempt:
                    raise
            finally:
                await pool.release(conn)
        raise AssertionError("unreachable")

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
            progress = tuple(
                _progress(space.partition, *replies[2 + i]) for i, space in enumerate(layout.spaces)
            )
            return Snapshot(layout.version, self._topic, progress), layout
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
    ) -> Reading[Mapping[Pair, PairLedger]]:
        if self._share_sha is None:
            await self._load_scripts()
        try:
            return await self._pair_ledgers(pairs, reference)
        except NoScriptError:
            await self._load_scripts()  # Redis restarted and lost its scripts
            return await self._pair_ledgers(pairs, reference)

    async def _pair_ledgers(
        self, pairs: Sequence[Pair], reference: date
    ) -> Reading[Mapping[Pair, PairLedger]]:
        """Each pair's share of each partition, merged. One round trip when the shares are
        held decoded and still current (see ledger_cache.py), two when some moved."""
        if not pairs:
            return Reading(Ledgers({}), await self.snapshot())
        bound = day_bound(reference)
        share_sha, check_sha = self._share_sha, self._check_sha
        assert share_sha is not None
        assert check_sha is not None
        for _ in range(RESOLVE_ATTEMPTS):
            layout = self._layout or await self._resolve()
            count = len(layout.spaces)
            plan: list[tuple[int, int, tuple[str, ...], CachedShare | None]] = []
            commands: list[tuple[str | int, ...]] = [
                ("GET", keyspace.ACTIVE_VERSION),
                ("HMGET", keyspace.version_meta(layout.version), "state", "created_ms"),
            ]
            for n, pair in enumerate(pairs):
                for p, keys in enumerate(relation_keys(layout.version, count, pair.key)):
                    cached = self._shares.get((layout.version, layout.created, p, pair.key))
                    if cached is None:
                        commands.append(("EVALSHA", share_sha, 6, *keys, bound))
                    else:
                        commands.append(("EVALSHA", check_sha, 2, keys[4], keys[5], bound))
                    plan.append((n, p, keys, cached))
            replies = await self._send(tuple(commands))
            if not self._still_served(layout, replies[0], replies[1]):
                continue
            replies = replies[2:]
            stale = [
                i
                for i, (_, _, _, cached) in enumerate(plan)
                if cached is not None and number(replies[i][2]) != cached.applied
            ]
            if stale:
                fresh = await self._send(
                    tuple(("EVALSHA", share_sha, 6, *plan[i][2], bound) for i in stale)
                )
                for i, reply in zip(stale, fresh, strict=True):
                    n, p, keys, _ = plan[i]
                    plan[i] = (n, p, keys, None)
                    replies[i] = reply
            shares: list[list[tuple[PairLedger, tuple[bytes, ...]]]] = [[] for _ in pairs]
            applied: list[int | None] = [None] * count
            high = [0] * count
            seen = [False] * count
            for (n, p, _, cached), reply in zip(plan, replies, strict=True):
                if cached is None:
                    share = share_of(reply)
                    contacts, position = reply[4:6], reply[6:8]
                    key = (layout.version, layout.created, p, pairs[n].key)
                    self._shares.put(key, number(position[0]), share)
                else:
                    share = cached.share
                    contacts, position = reply[0:2], reply[2:4]
                members = (*contacts[0], *contacts[1])
                if members or not share.is_empty:
                    shares[n].append((share, members))
                # per partition, the smallest offset any read saw: every pair covers it
                offset = number(position[0])
                held = applied[p]
                if not seen[p] or below(offset, held):
                    applied[p] = offset
                seen[p] = True
                high[p] = max(high[p], number(position[1]) or 0)
            ledgers = Ledgers({pair: shares[n] for n, pair in enumerate(pairs)})
            progress = tuple(PartitionProgress(p, applied[p], high[p]) for p in range(count))
            return Reading(ledgers, Snapshot(layout.version, self._topic, progress))
        raise NotReadyError(None, "missing")

    async def pair_history(self, pair: Pair, known_at: datetime) -> Reading[list[Event]]:
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
        return Reading(events, snapshot)

    async def partners(self, country: str) -> Reading[dict[str, int]]:
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
        return Reading(value, snapshot)

    # --- timelines ---------------------------------------------------------------------------

    async def timeline(self, query: TimelineQuery) -> Reading[Page[TimelineEntry]]:
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
        return Reading(Page(items, more), snapshot)

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
        """The retraction of `target`: it follows its target in the target's partition.

        The read models keep which events are retracted but not by which event, so this
        scans the partition's stream after the target. Proposed: the projector keeps a
        hash target -> retraction key, making this one HGET.
        """
        start = "(" + keyspace.stream_id(stored.offset)
        wanted = (target.source, target.id)
        while True:
            entries: Any = await self._redis.xrange(
                space.stream, min=start, max="+", count=SCAN_CHUNK
            )
            for _, fields in entries:
                if fields.get(b"t") == RETRACTED_TYPE.encode():
                    event = decode_event(fields[b"e"])
                    if retraction_target(event) == wanted:
                        return event
            if len(entries) < SCAN_CHUNK:
                return None
            start = "(" + entries[-1][0].decode()

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

    async def trips(self, person_id: str) -> Reading[list[Trip]]:
        index, snapshot = await self._trip_index(person_id)
        layout = self._layout_for(snapshot)
        states = await self._trip_states(layout, [(p, tk) for p, tk, _ in index])
        return Reading([states[(p, tk)] for p, tk, _ in index if (p, tk) in states], snapshot)

    def _layout_for(self, snapshot: Snapshot) -> _Layout:
        layout = self._layout
        if layout is None or layout.version != snapshot.version:
            spaces = tuple(PartitionSpace(snapshot.version, p) for p in range(snapshot.partitions))
            return _Layout(snapshot.version, None, spaces)
        return layout

    async def trip_history(self, person_id: str, known_at: datetime | None) -> Reading[list[Event]]:
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
        return Reading(events, snapshot)

    async def visits(self, query: VisitQuery) -> Reading[Page[VisitEntry]]:
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
        return Reading(Page(entries, more), snapshot)

    async def person(self, person_id: str) -> Reading[PersonRecord]:
        def fill(pipe: Pipeline, layout: _Layout) -> Callable[[list[Any]], list[Any]]:
            for space in layout.spaces:
                pipe.hgetall(space.person(person_id))
            return lambda replies: replies

        replies, snapshot, _ = await self._read(fill)
        # The person hash holds each appointment as the log's event JSON.
        appointments = [decode_event(raw) for reply in replies for raw in reply.values()]
        trips = await self.trips(person_id)
        return Reading(
            PersonRecord(appointments=appointments, trips=trips.value),
            snapshot.later(trips.snapshot),
        )

    # --- events ----------------------------------------------------------------------------

    async def events_by_id(self, event_id: str) -> Reading[list[StoredEvent]]:
        digest = keyspace.event_id_digest(event_id)

        def fill(pipe: Pipeline, layout: _Layout) -> Callable[[list[Any]], list[Any]]:
            for space in layout.spaces:
                pipe.hget(space.event_ids, digest)
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
        return Reading(found, snapshot)

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
        entries: list[StreamEntry] = []
        for name, items in replies or []:
            p = partitions[name if isinstance(name, bytes) else name.encode()]
            for entry_id, fields in items:
                actors = fields.get(b"a", b"").decode().split()
                entries.append(
                    StreamEntry(
                        partition=p,
                        offset=keyspace.offset_of_stream_id(entry_id),
                        type=fields.get(b"t", b"").decode(),
                        actors=frozenset(actors),
                        raw=fields[b"e"],
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
