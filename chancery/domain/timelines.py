"""Timelines: for each pair and each actor, its events in the order they occurred.

An event belongs to the timeline of every pair it is part of (`relations.pairs_of`) and of
every actor it involves: the parties, speakers and targets, mediators, a traveller's state
and destinations, the places an incident happened. Its position is `order_string`: the same
total order as every fold, as one lexicographically sortable string.

An actor's timeline is the union of its pairs' timelines and of its *solo* events, those
whose pairs leave it out (`TimelineRefs.solo`: an appointment, a mediator of a change of
relations, the place of an incident, a stance's subject): every actor of an event's pair is
an actor of the event, so nothing else is missing. The read models keep the pairs' timelines
and the solo events only, and merge an actor's timeline when it is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import assert_never

from pydantic import BaseModel, ConfigDict

from chancery.contract import (
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

from .history import effective
from .itineraries import leg_plans
from .ordering import order_string
from .relations import Pair, pairs_of


class TimelineRefs(BaseModel):
    """The timelines an event belongs to. `countries` holds actor codes: states and IGOs;
    `solo` those of them in none of `pairs`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairs: tuple[Pair, ...]
    countries: tuple[str, ...]
    solo: tuple[str, ...] = ()


def actors_of(event: Event) -> frozenset[str]:
    """Every state or organisation the event involves."""
    data = event.data
    match data:
        case TripPayload():
            return frozenset({data.traveller.actor, *leg_plans(event)})
        case EnvoyAppointedData():
            return frozenset({data.appointed_by, data.person.actor})
        case MeetingHeldData() | RelationsChangedData():
            return frozenset({*data.parties, *([data.mediator] if data.mediator else [])})
        case PartnershipDeclaredData():
            return frozenset(data.parties)
        case IncidentOccurredData():
            return frozenset({*data.parties, *data.locations})
        case StanceDeclaredData():
            return frozenset({data.party, *data.regarding, *data.aligned_with})
        case StatementMadeData():
            return frozenset({data.by, *data.targets})
        case ProposalMadeData():
            return frozenset({data.by, *data.regarding})
        case ProposalRejectedData():
            return frozenset({data.proposer, *data.by})
        case EventCodedData():
            return frozenset({data.actor1, data.actor2})
        case EventRetractedData():
            return frozenset()
        case _:
            assert_never(data)


def timeline_refs(event: Event) -> TimelineRefs:
    # Built from a validated event: nothing to validate again.
    pairs = tuple(sorted(pairs_of(event), key=str))
    countries = tuple(sorted(actors_of(event)))
    paired = {actor for pair in pairs for actor in (pair.first, pair.second)}
    return TimelineRefs.model_construct(
        pairs=pairs, countries=countries, solo=tuple(c for c in countries if c not in paired)
    )


def timeline_sort_key(event: Event) -> str:
    """The event's position on any timeline (lexicographic, total, arrival-independent)."""
    return order_string(event)


def pair_timeline(pair: Pair, events: Iterable[Event]) -> list[Event]:
    """The pair's effective events, in order."""
    return [e for e in effective(events) if pair in pairs_of(e)]


def country_timeline(actor: str, events: Iterable[Event]) -> list[Event]:
    """The actor's effective events, in order."""
    return [e for e in effective(events) if actor in actors_of(e)]


def on_country_timeline(actor: str, refs: TimelineRefs) -> bool:
    """Whether an event with these refs is on the actor's timeline, as the read models find
    it: through one of the actor's pairs, or as one of its solo events."""
    return actor in refs.solo or any(actor in (p.first, p.second) for p in refs.pairs)
