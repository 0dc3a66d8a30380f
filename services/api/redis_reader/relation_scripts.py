"""The relation read on Redis: its Lua scripts, its keys, and how its replies become ledgers.

Two scripts, each over one partition's keys only (they share its hash tag, so both run on
Redis Cluster too):
- SHARE: a pair's share in the partition (the four ledger hashes, the latest contact that
  started by the reference day and the earliest one after it) read atomically with the
  partition's applied offset and high watermark;
- CHECK: for a share the reader holds decoded (share_cache.py) but not the contacts of the
  day asked about, only those two contacts and the position, to tell whether the share is
  still current. (A share held with the day's contacts needs only the position: an HMGET
  of the progress hash, no script.)

Replies are decoded with chancery.keyspace's codecs into the domain's `PairLedger` and
merged with the domain's `PairLedger.merged`: nothing here decides what a relation is.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from chancery import keyspace
from chancery.domain import PairLedger
from chancery.domain.relations import Pair
from chancery.keyspace import PartitionSpace, ProgressField

from .round_trips import Script, field_map

Contacts = tuple[bytes, ...]
"""Contact members, as the contacts sorted set holds them: the last before the day's bound,
then the first from it on (either may be missing)."""


def _position(k: int) -> str:
    """Lua: the partition's applied offset and high watermark, from its progress hash KEYS[k]."""
    return (
        f"  redis.call('HGET', KEYS[{k}], '{ProgressField.APPLIED}') or '',\n"
        f"  redis.call('HGET', KEYS[{k}], '{ProgressField.HIGH_WATERMARK}') or ''\n"
    )


def _contacts_around(k: int) -> str:
    """Lua: the latest contact in the sorted set KEYS[k] before the day bound ARGV[1], and
    the first from it on."""
    return (
        f"  redis.call('ZRANGE', KEYS[{k}], '(' .. ARGV[1], '-', 'BYLEX', 'REV', 'LIMIT', 0, 1),\n"
        f"  redis.call('ZRANGE', KEYS[{k}], '[' .. ARGV[1], '+', 'BYLEX', 'LIMIT', 0, 1),\n"
    )


SHARE_SCRIPT = Script(
    "\nreturn {\n"
    "  redis.call('HGETALL', KEYS[1]),\n"
    "  redis.call('HGETALL', KEYS[2]),\n"
    "  redis.call('HGETALL', KEYS[3]),\n"
    "  redis.call('HGETALL', KEYS[4]),\n" + _contacts_around(5) + _position(6) + "}\n"
)
"""A pair's share in one partition, read atomically with the partition's position.
KEYS: `RelationKeys`; ARGV: the day bound. Replies a `ShareReply`."""

CHECK_SCRIPT = Script("\nreturn {\n" + _contacts_around(1) + _position(2) + "}\n")
"""For a share held decoded: the two contacts that matter on the day, and the position (to
tell whether the held share is still the partition's). KEYS: contacts, progress; ARGV: the
day bound. Replies a `ContactsReply`."""


class RelationKeys(NamedTuple):
    """The keys of a pair's share in one partition, in the order SHARE_SCRIPT takes them."""

    days: str
    status: str
    partnership: str
    plans: str
    contacts: str
    progress: str


class ContactsReply(NamedTuple):
    """CHECK_SCRIPT's reply, and the end of SHARE_SCRIPT's: the day's two contacts and the
    partition's position."""

    last_contact: list[bytes]
    next_contact: list[bytes]
    applied: bytes
    high_watermark: bytes

    @property
    def contacts(self) -> Contacts:
        return (*self.last_contact, *self.next_contact)

    @property
    def position(self) -> tuple[bytes, bytes]:
        """The partition's applied offset and high watermark ('' where it has none)."""
        return self.applied, self.high_watermark


class ShareReply(NamedTuple):
    """SHARE_SCRIPT's reply: the share's four ledger hashes (flat field-value lists), then
    what CHECK_SCRIPT replies."""

    days: list[bytes]
    status: list[bytes]
    partnership: list[bytes]
    plans: list[bytes]
    around: ContactsReply

    @classmethod
    def of(cls, reply: list[Any]) -> ShareReply:
        days, status, partnership, plans, *around = reply
        return cls(days, status, partnership, plans, ContactsReply(*around))

    def share(self) -> PairLedger:
        """The share without its contacts, decoded by the keyspace codecs."""
        if not (self.days or self.status or self.partnership or self.plans):
            return PairLedger()
        return PairLedger(
            days=keyspace.decode_days(field_map(self.days)),
            statuses=keyspace.decode_statuses(field_map(self.status)),
            partnerships=keyspace.decode_partnerships(field_map(self.partnership)),
            plans=keyspace.decode_plans(field_map(self.plans)),
        )


@functools.lru_cache(maxsize=4096)
def relation_keys(version: int, partitions: int, pair: str) -> tuple[RelationKeys, ...]:
    """Per partition, the keys of the pair's share (built and checked once per pair)."""
    out = []
    for p in range(partitions):
        space = PartitionSpace(version, p)
        days, status, partnership, plans, contacts = (
            space.relation(pair, part) for part in keyspace.RELATION_PARTS
        )
        out.append(RelationKeys(days, status, partnership, plans, contacts, space.progress))
    return tuple(out)


def with_contacts(share: PairLedger, members: Contacts) -> PairLedger:
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
    an answer served from the body cache never needs it."""

    def __init__(self, shares: dict[Pair, list[tuple[PairLedger, Contacts]]]) -> None:
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
