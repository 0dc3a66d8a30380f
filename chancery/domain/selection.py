"""Which events a subscriber chose: the filter of the live stream and of webhooks alike.

Four kinds of criteria, each a set: event types, actors (states or organisations the event
involves, `timelines.actors_of`), pairs (whose relation the event is part of,
`relations.pairs_of`) and people (named in the event, `people_of`). An event is chosen when it
matches every kind given, and within a kind any one of its values. No criterion: everything.

Type and actors are what the projector writes beside each stream entry, so the stream filters
on them without decoding the event; pairs and people need the event itself, and
`EventFilter.accepts` asks for it only when those criteria are given and the cheap ones pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import assert_never

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
    VisitAnnouncedData,
)

from .relations import Pair, pairs_of
from .timelines import actors_of


def people_of(event: Event) -> frozenset[str]:
    """The ids of every person the event names: the envoy appointed, the traveller (and who
    announced the trip), the participants of a meeting, the speaker of a stance or statement."""
    data = event.data
    match data:
        case VisitAnnouncedData():
            named = [data.traveller, *([data.announced_by] if data.announced_by else [])]
            return frozenset(p.id for p in named)
        case TripPayload():
            return frozenset({data.traveller.id})
        case EnvoyAppointedData():
            return frozenset({data.person.id})
        case MeetingHeldData():
            return frozenset(p.id for p in data.participants)
        case StanceDeclaredData() | StatementMadeData():
            return frozenset({data.speaker.id}) if data.speaker else frozenset()
        case (
            RelationsChangedData()
            | PartnershipDeclaredData()
            | IncidentOccurredData()
            | ProposalMadeData()
            | ProposalRejectedData()
            | EventCodedData()
            | EventRetractedData()
        ):
            return frozenset()
        case _:
            assert_never(data)


@dataclass(frozen=True)
class EventFilter:
    """None for a kind means "any"; a set means "one of these"."""

    types: frozenset[str] | None = None
    countries: frozenset[str] | None = None
    pairs: frozenset[Pair] | None = None
    people: frozenset[str] | None = None

    @property
    def needs_event(self) -> bool:
        """Whether matching needs the decoded event (pairs or people are given)."""
        return self.pairs is not None or self.people is not None

    def accepts(
        self,
        event_type: str,
        actors: Collection[str],
        event: Callable[[], Event] | None = None,
    ) -> bool:
        """Whether an event of `event_type` involving `actors` is chosen; `event` gives the
        event itself, asked for only when pairs or people are given."""
        if self.types is not None and event_type not in self.types:
            return False
        if self.countries is not None and self.countries.isdisjoint(actors):
            return False
        if not self.needs_event:
            return True
        if event is None:
            raise ValueError("this filter chooses by pair or person: it needs the event")
        decoded = event()
        if self.pairs is not None and self.pairs.isdisjoint(pairs_of(decoded)):
            return False
        return self.people is None or not self.people.isdisjoint(people_of(decoded))

    def accepts_event(self, event: Event) -> bool:
        return self.accepts(event.type, actors_of(event), lambda: event)
