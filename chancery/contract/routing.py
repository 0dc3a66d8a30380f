"""Topics, and the partition key of each event: the subject whose order matters.

One partition keeps its records in order, so events that must be read in order share a key:
- trips and appointments: the person (an itinerary stays in one partition);
- relation changes, partnerships, coded events: the sorted pair or party list (`CHN|USA`);
- meetings and incidents: the sorted party list;
- statements: the sorted list of the speaker and its targets;
- proposals: the proposal id; stances: the declaring party;
- a retraction: the key of the event it retracts, which only ingest knows (it looks the
  target up), so `partition_key` returns None and ingest fills it in. A retraction and its
  target therefore always share a partition.

A key's partition is `partition_for(key, count)`: Kafka's default partitioner, a function of
the key's bytes and the topic's partition count only. A key therefore keeps its partition as
long as the topic keeps its count, and may move if the count changes: why an existing
topic's count is never changed under it (services/platform/topics.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .catalogue import EVENT_TYPES, TRIP_TYPES, Event

EVENTS_TOPIC = "chancery.events"
DEAD_LETTER_TOPIC = "chancery.events.dlq"
DEFAULT_PARTITIONS = 6
RECORD_CONTENT_TYPE = "application/cloudevents+json"
"""The `content-type` header of every record (CloudEvents structured mode)."""

PARTY_SEPARATOR = "|"

_MURMUR2_SEED = 0x9747B28C
_MURMUR2_M = 0x5BD1E995
_U32 = 0xFFFFFFFF


def party_key(parties: Iterable[str]) -> str:
    """The sorted, de-duplicated codes joined by `|`: `party_key(["USA", "CHN"]) == "CHN|USA"`."""
    return PARTY_SEPARATOR.join(sorted(set(parties)))


def _pair_key(a: str, b: str) -> str:
    """`party_key((a, b))`, without building a set and a sorted list."""
    if a == b:
        return a
    return f"{a}{PARTY_SEPARATOR}{b}" if a < b else f"{b}{PARTY_SEPARATOR}{a}"


def partition_key(event: Event) -> str | None:
    """The Kafka record key of `event`; None for a retraction (ingest resolves it)."""
    return partition_key_of(event.type, event.data)


def partition_key_of(type_name: str, data: Any) -> str | None:
    """`partition_key` of an event of type `type_name` whose payload is `data`: a model, or
    its plain twin (plain.py), which has the same field names."""
    return _KEY_OF[type_name](data)


def _traveller(data: Any) -> str:
    return str(data.traveller.id)


def _parties(data: Any) -> str:
    return party_key(data.parties)


_KEY_OF: Mapping[str, Callable[[Any], str | None]] = MappingProxyType(
    {
        "diplomacy.event.coded": lambda data: _pair_key(data.actor1, data.actor2),
        **dict.fromkeys(TRIP_TYPES, _traveller),
        "diplomacy.envoy.appointed": lambda data: str(data.person.id),
        "diplomacy.relations.changed": _parties,
        "diplomacy.partnership.declared": _parties,
        "diplomacy.meeting.held": _parties,
        "diplomacy.incident.occurred": _parties,
        "diplomacy.statement.made": lambda data: party_key((data.by, *data.targets)),
        "diplomacy.proposal.made": lambda data: str(data.proposal_id),
        "diplomacy.proposal.rejected": lambda data: str(data.proposal_id),
        "diplomacy.stance.declared": lambda data: str(data.party),
        "diplomacy.event.retracted": lambda data: None,
    }
)
if _KEY_OF.keys() != EVENT_TYPES.keys():
    raise RuntimeError(f"no partition key rule for {set(EVENT_TYPES) - set(_KEY_OF)}")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of `data`, as an unsigned 32-bit int (Java's Utils.murmur2)."""
    length = len(data)
    h = (_MURMUR2_SEED ^ length) & _U32
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _MURMUR2_M) & _U32
        k ^= k >> 24
        k = (k * _MURMUR2_M) & _U32
        h = ((h * _MURMUR2_M) & _U32) ^ k
    tail = length % 4
    if tail >= 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _MURMUR2_M) & _U32
    h ^= h >> 13
    h = (h * _MURMUR2_M) & _U32
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a record keyed `key` in a topic of `partitions` partitions.

    Kafka's default partitioner for a keyed record (Java's and aiokafka's): murmur2 of the
    key, made positive, modulo the count. It depends on nothing else: not on the brokers,
    their number, which of them leads a partition, or the client.
    """
    if partitions < 1:
        msg = f"a topic has at least one partition, not {partitions}"
        raise ValueError(msg)
    return (murmur2(key) & 0x7FFFFFFF) % partitions
