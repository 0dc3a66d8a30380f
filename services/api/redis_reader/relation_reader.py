"""The relation read model on Redis: pair ledgers (the hot path), partners, a pair's events.

A pair's ledger is the merge of its share in every partition. Decoded shares, with the
contacts that matter on the days asked about, are held while their partition's offset holds
(share_cache.py). So a read of a pair asked about before is one round trip: the version
check and an HMGET of each partition's progress; when every offset is where the last read of
that pair and day found it, that read's result is this one's. A partition that moved, or a
share not held, is read with a small Lua script over that partition's keys only
(relation_scripts.py), in the same round trip when the reader knows beforehand and in a
second one when it learns it from the offsets.

Nothing here decides what a relation is: values are decoded with chancery.keyspace and
merged by chancery.domain, as the projector folds them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from cachetools import LRUCache

from chancery import keyspace
from chancery.contract import Event
from chancery.domain import PairLedger, pairs_of
from chancery.domain.relations import Pair
from services.api.reader import NotReadyError, ReadResult

from .event_reader import EventReader
from .relation_scripts import (
    CHECK_SCRIPT,
    SHARE_SCRIPT,
    Contacts,
    ContactsReply,
    Ledgers,
    RelationKeys,
    ShareReply,
    relation_keys,
)
from .round_trips import Command, Commands, RoundTrips, field_map, number
from .served_version import HEAD_REPLIES, RESOLVE_ATTEMPTS, Layout, ServedVersion, read_progress
from .share_cache import CachedShare, ShareCache

RECENT_READS_KEPT = 64
"""Reads of one pair remembered with the offsets they were read at ((pair, day) -> the
last): while every offset holds, the next read of that pair on that day has the same
result. Few: each keeps its shares (and merged ledger) alive beside the share cache."""

PairLedgers = ReadResult[Mapping[Pair, PairLedger]]


class Ask(StrEnum):
    """What a relation read asks of one partition for one pair."""

    OFFSET = "offset"  # its position only: the share and its contacts on the day are held
    CONTACTS = "contacts"  # the day's two contacts and the position: the share is held
    SHARE = "share"  # the whole share and the position: nothing usable is held


@dataclass(frozen=True, slots=True)
class _RecentRead:
    """The last read of a pair on a day: what every partition's position was, and the
    result it gave."""

    found_at: tuple[Any, ...]  # version, created, then each partition's applied and high
    result: PairLedgers


@dataclass(slots=True)
class _Plan:
    """One attempt at a relation read: for each pair and partition (pair by pair), what is
    asked and what share is held."""

    layout: Layout
    names: tuple[str, ...]
    bound: str  # the reference day, as the contacts' sorted sets order it
    asks: list[Ask]
    held: list[CachedShare | None]
    recent: _RecentRead | None

    @property
    def partitions(self) -> int:
        return len(self.layout.spaces)

    def keys(self, i: int) -> RelationKeys:
        n, p = divmod(i, self.partitions)
        return relation_keys(self.layout.version, self.partitions, self.names[n])[p]

    def command(self, i: int, ask: Ask) -> Command:
        keys = self.keys(i)
        if ask is Ask.OFFSET:
            return read_progress(keys.progress)
        if ask is Ask.CONTACTS:
            return CHECK_SCRIPT.call((keys.contacts, keys.progress), self.bound)
        return SHARE_SCRIPT.call(keys, self.bound)

    def commands(self) -> Commands:
        """The version check, then what is asked of each partition for each pair."""
        asked = (self.command(i, ask) for i, ask in enumerate(self.asks))
        return (*self.layout.head(), *asked)


class RelationReader:
    def __init__(self, round_trips: RoundTrips, served: ServedVersion, events: EventReader) -> None:
        self._round_trips = round_trips
        self._served = served
        self._events = events
        self._shares = ShareCache()
        self._recent: LRUCache[tuple[tuple[str, ...], str], _RecentRead] = LRUCache(
            RECENT_READS_KEPT
        )

    async def pair_ledgers(self, pairs: Sequence[Pair], reference: date) -> PairLedgers:
        """Each pair's share of each partition, merged. One round trip when the shares are
        held decoded and still current, two when some moved."""
        if not pairs:
            return ReadResult(Ledgers({}), await self._served.snapshot())
        bound = _bound(reference)
        names = tuple(pair.key for pair in pairs)
        for _ in range(RESOLVE_ATTEMPTS):
            plan = self._plan(await self._served.layout(), names, bound)
            layout = plan.layout
            replies = await self._round_trips.send_packed_once(
                ("relations", layout.version, names, bound, tuple(plan.asks)), plan.commands
            )
            if not self._served.still_served(layout, replies):
                continue
            replies = replies[HEAD_REPLIES:]
            if plan.recent is not None:
                if plan.recent.found_at == (layout.version, layout.created, *_positions(replies)):
                    return plan.recent.result
                plan.held = self._held(layout, names)  # something moved: look at what is held
            await self._read_stale_shares(plan, replies)
            result, found_at = self._merge(plan, replies, pairs)
            if len(pairs) == 1:
                self._recent[(names, bound)] = _RecentRead(found_at, result)
            return result
        raise NotReadyError(None, "missing")

    def _held(self, layout: Layout, names: tuple[str, ...]) -> list[CachedShare | None]:
        """The share held for each pair and partition (pair by pair)."""
        version, created = layout.version, layout.created
        return [
            self._shares.get((version, created, p, name))
            for name in names
            for p in range(len(layout.spaces))
        ]

    def _plan(self, layout: Layout, names: tuple[str, ...], bound: str) -> _Plan:
        """What to ask of each partition: after a read of these pairs on this day, only the
        offsets (the held shares are looked at only if one moved); else each share's
        position if it is held with the day's contacts, the contacts too if it is held
        without them, and the whole share if it is not held."""
        recent = self._recent.get((names, bound))
        if recent is not None and recent.found_at[:2] == (layout.version, layout.created):
            asks = [Ask.OFFSET] * (len(names) * len(layout.spaces))
            return _Plan(layout, names, bound, asks, [], recent)
        held = self._held(layout, names)
        asks = [
            Ask.SHARE if h is None else Ask.OFFSET if bound in h.contacts else Ask.CONTACTS
            for h in held
        ]
        return _Plan(layout, names, bound, asks, held, None)

    async def _read_stale_shares(self, plan: _Plan, replies: list[Any]) -> None:
        """Read again, in a second round trip, each share not held (any more), held without
        the day's contacts, or held from before its partition moved; its reply replaces the
        one in `replies`."""
        stale = [
            i
            for i, (cached, ask, reply) in enumerate(
                zip(plan.held, plan.asks, replies, strict=True)
            )
            if (cached is None and ask is not Ask.SHARE)
            or (cached is not None and ask is Ask.OFFSET and plan.bound not in cached.contacts)
            or (cached is not None and number(_position(ask, reply)[0]) != cached.applied)
        ]
        if not stale:
            return
        fresh = await self._round_trips.send(tuple(plan.command(i, Ask.SHARE) for i in stale))
        for i, reply in zip(stale, fresh, strict=True):
            plan.asks[i] = Ask.SHARE
            replies[i] = reply

    def _merge(
        self, plan: _Plan, replies: list[Any], pairs: Sequence[Pair]
    ) -> tuple[PairLedgers, tuple[Any, ...]]:
        """Hold the shares read, gather each pair's shares with their contacts on the day,
        and the snapshot the read is of: per partition, the smallest offset any of its
        replies showed (every pair's share covers it). Also what `_RecentRead.found_at`
        holds for this read."""
        layout, count, bound = plan.layout, plan.partitions, plan.bound
        version, created = layout.version, layout.created
        shares: list[list[tuple[PairLedger, Contacts]]] = [[] for _ in pairs]
        applied: list[int | None] = [None] * count
        high = [0] * count
        found_at: list[bytes | None] = []
        for i, (ask, reply) in enumerate(zip(plan.asks, replies, strict=True)):
            n, p = divmod(i, count)
            members: Contacts
            position: Sequence[bytes | None]
            if ask is Ask.SHARE:
                read = ShareReply.of(reply)
                cached = self._shares.put(
                    (version, created, p, plan.names[n]), number(read.around.applied), read.share()
                )
                members, position = read.around.contacts, read.around.position
                cached.keep_contacts(bound, members)
            else:
                kept = plan.held[i]
                assert kept is not None
                cached = kept
                if ask is Ask.CONTACTS:
                    around = ContactsReply(*reply)
                    members, position = around.contacts, around.position
                    cached.keep_contacts(bound, members)
                else:
                    members, position = cached.contacts[bound], reply
            found_at += position
            if members or not cached.share.is_empty:
                shares[n].append((cached.share, members))
            offset = number(position[0])
            if n == 0 or _below(offset, applied[p]):
                applied[p] = offset
            high[p] = max(high[p], number(position[1]) or 0)
        ledgers = Ledgers({pair: shares[n] for n, pair in enumerate(pairs)})
        snapshot = self._served.snapshot_of(version, applied, high)
        return ReadResult(ledgers, snapshot), (version, created, *found_at)

    async def pair_history(self, pair: Pair, known_at: datetime) -> ReadResult[list[Event]]:
        def commands(layout: Layout) -> Commands:
            return tuple(("ZRANGE", s.pair_timeline(pair.key), 0, -1) for s in layout.spaces)

        members, snapshot, layout = await self._served.read(commands)
        placed = [(p, keyspace.timeline_place(m)) for p, reply in enumerate(members) for m in reply]
        events = await self._events.with_retracted(
            layout,
            await self._events.load_events(layout, placed),
            known_at,
            lambda e: pair in pairs_of(e),
        )
        return ReadResult(events, snapshot)

    async def partners(self, country: str) -> ReadResult[dict[str, int]]:
        def commands(layout: Layout) -> Commands:
            return tuple(("HGETALL", s.partners(country)) for s in layout.spaces)

        replies, snapshot, _ = await self._served.read(commands)
        counts: dict[str, int] = {}
        for reply in replies:
            for partner, n in field_map(reply).items():
                name = partner.decode()
                counts[name] = counts.get(name, 0) + int(n)
        return ReadResult({k: v for k, v in counts.items() if v > 0}, snapshot)


def _position(ask: Ask, reply: Any) -> Sequence[bytes | None]:
    """The partition's applied offset and high watermark, as a reply to `ask` gives them."""
    if ask is Ask.OFFSET:
        position: Sequence[bytes | None] = reply
        return position
    if ask is Ask.CONTACTS:
        return ContactsReply(*reply).position
    return ShareReply.of(reply).around.position


def _positions(replies: list[Any]) -> list[bytes | None]:
    """Every partition's applied offset and high watermark, from replies to Ask.OFFSET."""
    return [value for reply in replies for value in reply]


def _below(a: int | None, b: int | None) -> bool:
    return (a if a is not None else -1) < (b if b is not None else -1)


@functools.lru_cache(maxsize=1024)
def _bound(reference: date) -> str:
    """`keyspace.day_code`, kept (every read of a day asks for it)."""
    return keyspace.day_code(reference)
