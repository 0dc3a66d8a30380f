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
