"""The relation read on Redis: its Lua scripts, its keys, and how its replies become ledgers.

Two scripts, each over one partition's keys only (they share its hash tag, so both run on
Redis Cluster too):
- SHARE: a pair's share in the partition (the four ledger hashes, the latest contact that
  started by the reference day and the earliest one after it) read atomically with the
  partition's applied offset and high watermark;
- CHECK: for a share the reader holds decoded (ledger_cache.py) but not the contacts of
  the day asked about, only those two contacts and the position, to tell whether the share
  is still current. (A share held with the day's contacts needs only the position: an HMGET
  of the progress hash, no script.)

Replies are decoded with chancery.keyspace's codecs into the domain's `PairLedger` and
merged with the domain's `PairLedger.merged`: nothing here decides what a relation is.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from chancery import keyspace
from chancery.domain import PairLedger
from chancery.domain.relations import Pair
from chancery.keyspace import PartitionSpace

SHARE_SCRIPT = """
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('ZRANGE', KEYS[5], '(' .. ARGV[1], '-', 'BYLEX', 'REV', 'LIMIT', 0, 1),
  redis.call('ZRANGE', KEYS[5], '[' .. ARGV[1], '+', 'BYLEX', 'LIMIT', 0, 1),
  redis.call('HGET', KEYS[6], 'applied') or '',
  redis.call('HGET', KEYS[6], 'high_watermark') or ''
}
"""
"""A pair's share in one partition, read atomically with the partition's position.
KEYS: days status partnership plans contacts progress; ARGV: the day bound. Returns
{days, status, partnership, plans, last contact, next contact, applied, high watermark}."""

CHECK_SCRIPT = """
return {
  redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '-', 'BYLEX', 'REV', 'LIMIT', 0, 1),
  redis.call('ZRANGE', KEYS[1], '[' .. ARGV[1], '+', 'BYLEX', 'LIMIT', 0, 1),
  redis.call('HGET', KEYS[2], 'applied') or '',
  redis.call('HGET', KEYS[2], 'high_watermark') or ''
}
"""
"""For a share held decoded: the two contacts that matter on the day, and the position
(to tell whether the held share is still the partition's). KEYS: contacts progress."""


def pairs(flat: Any) -> dict[bytes, Any]:
    if isinstance(flat, dict):
        return {(k if isinstance(k, bytes) else str(k).encode()): v for k, v in flat.items()}
    items = list(flat)
    return dict(zip(items[::2], items[1::2], strict=True))


@functools.lru_cache(maxsize=4096)
def relation_keys(version: int, partitions: int, pair: str) -> tuple[tuple[str, ...], ...]:
    """Per partition, the keys the share script reads (built and checked once per pair):
    days, status, partnership, plans, contacts, progress."""
    out = []
    for p in range(partitions):
        space = PartitionSpace(version, p)
        out.append(
            (*(space.relation(pair, part) for part in keyspace.RELATION_PARTS), space.progress)
        )
    return tuple(out)


def below(a: int | None, b: int | None) -> bool:
    return (a if a is not None else -1) < (b if b is not None else -1)


def number(value: bytes | None) -> int | None:
    return int(value) if value else None


def share_of(parts: list[Any]) -> PairLedger:
    """A partition's share without its contacts, decoded by the keyspace codecs."""
    if not any(parts[:4]):
        return PairLedger()
    return PairLedger(
        days=keyspace.decode_days(pairs(parts[0])),
        statuses=keyspace.decode_statuses(pairs(parts[1])),
        partnerships=keyspace.decode_partnerships(pairs(parts[2])),
        plans=keyspace.decode_plans(pairs(parts[3])),
    )


def with_contacts(share: PairLedger, members: tuple[bytes, ...]) -> PairLedger:
    if not members:
        return share
    return PairLedger(
        days=share.days,
        statuses=share.statuses,
        partnerships=share.partnerships,
        contacts=dict(keyspace.decode_contact(m) for m in members),
        plans=share.plans,
    )


class Ledgers(Mapping[Pair, PairLedger]):
    """Pair -> merged ledger, merged (and its contacts decoded) only when first looked up:
    an answer served from the answer cache never needs it."""

    def __init__(self, shares: dict[Pair, list[tuple[PairLedger, tuple[bytes, ...]]]]) -> None:
        self._shares = shares
        self._merged: dict[Pair, PairLedger] = {}

    def __getitem__(self, pair: Pair) -> PairLedger:
        merged = self._merged.get(pair)
        if merged is None:
            parts = [with_contacts(share, members) for share, members in self._shares[pair]]
            merged = self._merged[pair] = merge(parts)
        return merged

    def __iter__(self) -> Iterator[Pair]:
        return iter(self._shares)

    def __len__(self) -> int:
        return len(self._shares)


def merge(shares: list[PairLedger]) -> PairLedger:
    """The domain's merge, folding the smaller shares into the largest (it copies what it
    folds in, so this order copies least)."""
    if not shares:
        return PairLedger()
    ordered = sorted(shares, key=lambda s: len(s.days), reverse=True)
    merged = ordered[0]
    for share in ordered[1:]:
        merged = merged.merged(share)
    return merged
