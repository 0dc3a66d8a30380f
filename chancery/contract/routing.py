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

from collections.abc import Iterable
from typing import assert_never

from .catalogue import (
    EnvoyAppointedData,
    Event,
    EventCodedData,
    EventRetractedData,
    IncidentOccurredData,
    MeetingHeldData,
    PartnershipDeclaredData,
    ProposalMadeData,
    ProposalRejectedData,
    RelationsChangedData,
    StanceDeclaredData,
    StatementMadeData,
    TripPayload,
)

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
    data = event.data
    match data:
        case EventCodedData():  # first: imports make these the bulk of the traffic
            return _pair_key(data.actor1, data.actor2)
        case TripPayload():
            return data.traveller.id
        case EnvoyAppointedData():
            return data.person.id
        case RelationsChangedData() | PartnershipDeclaredData():
            return party_key(data.parties)
        case MeetingHeldData() | IncidentOccurredData():
            return party_key(data.parties)
        case StatementMadeData():
            return party_key((data.by, *data.targets))
        case ProposalMadeData() | ProposalRejectedData():
            return data.proposal_id
        case StanceDeclaredData():
            return data.party
        case EventRetractedData():
            return None
        case _:
            assert_never(data)


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
