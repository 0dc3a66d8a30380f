"""The catalogue: one typed payload per event type, and the discriminated union of all.

Each type is a frozen CloudEvents envelope whose `type` is a `Literal` tag and whose `data`
is its payload. Every payload but a retraction's says when the event occurred
(`occurred`, a `When`) and may override the CAMEO code and Goldstein value its type
defaults to (`cameo`, `goldstein`; see `cameo.py`).

Families:
- people: `envoy.appointed`;
- trips (all carry `trip_id` and `traveller`, so every event of one trip correlates):
  `visit.announced`, `visit.leg.started`, `visit.leg.completed`, `visit.postponed`,
  `visit.rescheduled`, `visit.cancelled`, `visit.completed`;
- contacts and relations: `meeting.held`, `relations.changed`, `partnership.declared`;
- positions: `stance.declared`, `statement.made`, `proposal.made`, `proposal.rejected`;
- conflict: `incident.occurred`;
- imports: `event.coded` (GDELT, ICEWS: a two-party CAMEO-coded event);
- corrections: `event.retracted`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .actors import ActorCode, CountryCode, Person
from .cameo import (
    DEFAULT_CAMEO,
    MEETING_MODE_CAMEO,
    RELATION_CHANGE_CAMEO,
    STATEMENT_KIND_CAMEO,
    CameoCode,
    Goldstein,
    QuadClass,
    lookup,
)
from .envelope import EventEnvelope, EventRef, Payload
from .errors import field_error
from .plain_rules import same_check_as
from .text import HttpUrl, Label, Name, Quote, Slug, Text
from .when import When

MAX_PARTIES = 50
MAX_LEGS = 30

Parties = Annotated[tuple[ActorCode, ...], Field(min_length=2, max_length=MAX_PARTIES)]
Actors = Annotated[tuple[ActorCode, ...], Field(max_length=MAX_PARTIES)]


def _unique(values: Iterable[object], field: str) -> None:
    seen: set[object] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise field_error(
                (field, index),
                "duplicate",
                "'{value}' is listed twice",
                value,
                value=str(value),
            )
        seen.add(value)


def _not_in(value: str | None, others: Iterable[str], field: str, others_field: str) -> None:
    if value is not None and value in set(others):
        raise field_error(
            (field,),
            "overlap",
            "'{value}' cannot also be one of the {others}",
            value,
            value=value,
            others=others_field,
        )


class Occurrence(Payload):
    """A payload that occurred at some time and may override its CAMEO coding."""

    occurred: When
    cameo: CameoCode | None = None
    goldstein: Goldstein | None = None

    @property
    def when(self) -> When:
        return self.occurred

    def refined_cameo(self) -> str | None:
        """The code this payload's own fields imply, if more precise than its type's default."""
        return None


# --- people -------------------------------------------------------------------------------


class EnvoyAppointedData(Occurrence):
    """A person named to a role: Li Hui, special representative for Eurasian affairs."""

    person: Person
    appointed_by: ActorCode
    role: Label
    previous_roles: Annotated[tuple[Label, ...], Field(max_length=10)] = ()
    mandate: Text | None = None


# --- trips --------------------------------------------------------------------------------


class Destination(BaseModel):
    """Where a leg of a trip goes. A trip has at most one leg per country."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    country: CountryCode
    city: Name | None = None


class Leg(Destination):
    """A planned leg: a destination and, if known, its dates at their precision."""

    planned: When | None = None


def _check_legs(legs: tuple[Leg, ...], planned: When | None) -> None:
    _unique((leg.country for leg in legs), "legs")
    for index, leg in enumerate(legs):
        if planned is not None and leg.planned is not None and not planned.contains(leg.planned):
            raise field_error(
                ("legs", index, "planned"),
                "leg_outside_trip",
                "the leg's dates ({leg}) fall outside the trip's dates ({trip})",
                str(leg.planned),
                leg=str(leg.planned),
                trip=str(planned),
            )


class TripPayload(Occurrence):
    """Every trip event names its trip and its traveller."""

    trip_id: Slug
    traveller: Person


class VisitAnnouncedData(TripPayload):
    """A trip announced: Li Hui to Russia, Ukraine, France, Germany and Poland next week."""

    legs: Annotated[tuple[Leg, ...], Field(min_length=1, max_length=MAX_LEGS)]
    planned: When | None = None
    purpose: Text | None = None
    announced_by: Person | None = None

    @model_validator(mode="after")
    def _legs_fit_the_trip(self) -> VisitAnnouncedData:
        _check_legs(self.legs, self.planned)
        return self


class VisitLegData(TripPayload):
    """A leg of a trip as it happens: started or completed in `country`."""

    country: CountryCode
    city: Name | None = None
    derived: Literal[True] | None = None
    """Set (true) when an importer read this leg off coded events (`event.coded`) of the same
    source, which already count the interaction: the leg then adds its contact and plan to
    the relation, not its counts or score. A flag, not a link to one row, so the two rows
    of a visit pair derive the very same event."""


class VisitPostponedData(TripPayload):
    """A trip put off, to new dates (`planned`) or, when `planned` is absent, to no date yet."""

    legs: Annotated[tuple[Leg, ...], Field(min_length=1, max_length=MAX_LEGS)]
    planned: When | None = None
    reason: Text | None = None

    @model_validator(mode="after")
    def _legs_fit_the_trip(self) -> VisitPostponedData:
        _check_legs(self.legs, self.planned)
        return self


class VisitRescheduledData(TripPayload):
    """New dates for a trip, with its legs as now planned; `dropped` legs no longer happen."""

    legs: Annotated[tuple[Leg, ...], Field(min_length=1, max_length=MAX_LEGS)]
    planned: When
    dropped: Annotated[tuple[CountryCode, ...], Field(max_length=MAX_LEGS)] = ()
    reason: Text | None = None

    @model_validator(mode="after")
    def _legs_fit_the_trip(self) -> VisitRescheduledData:
        _check_legs(self.legs, self.planned)
        _unique(self.dropped, "dropped")
        for index, country in enumerate(self.dropped):
            if country in {leg.country for leg in self.legs}:
                raise field_error(
                    ("dropped", index),
                    "overlap",
                    "'{country}' is both dropped and planned",
                    country,
                    country=country,
                )
        return self


class VisitCancelledData(TripPayload):
    destinations: Annotated[tuple[Destination, ...], Field(min_length=1, max_length=MAX_LEGS)]
    reason: Text | None = None

    @model_validator(mode="after")
    def _unique_destinations(self) -> VisitCancelledData:
        _unique((d.country for d in self.destinations), "destinations")
        return self


class VisitCompletedData(TripPayload):
    destinations: Annotated[tuple[Destination, ...], Field(min_length=1, max_length=MAX_LEGS)]

    @model_validator(mode="after")
    def _unique_destinations(self) -> VisitCompletedData:
        _unique((d.country for d in self.destinations), "destinations")
        return self


# --- contacts and relations -----------------------------------------------------------------

MeetingMode = Literal["in_person", "phone", "video"]


class MeetingHeldData(Occurrence):
    """Talks or a call between parties: Wang Yi and Jake Sullivan in Vienna."""

    parties: Parties
    mode: MeetingMode = "in_person"
    participants: Annotated[tuple[Person, ...], Field(max_length=MAX_PARTIES)] = ()
    city: Name | None = None
    country: CountryCode | None = None
    mediator: ActorCode | None = None
    topic: Text | None = None
    characterisations: Annotated[tuple[Label, ...], Field(max_length=12)] = ()
    derived: Literal[True] | None = None
    """Set (true) when an importer read this meeting off coded events (`event.coded`) of the same
    source, which already count the interaction: the meeting then adds its contact to the
    relation, not its counts or score. A flag, not a link to one row, so the A->B and B->A
    rows of one consultation derive the very same event."""

    @model_validator(mode="after")
    def _consistent(self) -> MeetingHeldData:
        _unique(self.parties, "parties")
        _not_in(self.mediator, self.parties, "mediator", "parties")
        sides = {*self.parties, *([self.mediator] if self.mediator else [])}
        for index, person in enumerate(self.participants):
            if person.actor not in sides:
                raise field_error(
                    ("participants", index, "country"),
                    "participant_not_a_party",
                    "{name} acts for {actor}, which is neither a party nor the mediator",
                    person.actor,
                    name=person.name,
                    actor=person.actor,
                )
        _unique((person.id for person in self.participants), "participants")
        return self

    def refined_cameo(self) -> str:
        return MEETING_MODE_CAMEO[self.mode]


RelationChange = Literal[
    "established", "restored", "upgraded", "downgraded", "suspended", "severed"
]


class RelationsChangedData(Occurrence):
    """A change of diplomatic status between two parties, possibly mediated."""

    parties: tuple[ActorCode, ActorCode]
    change: RelationChange
    mediator: ActorCode | None = None
    break_years: Annotated[int, Field(ge=1, le=200)] | None = None
    """For a restoration: how long relations had been broken ("after a seven-year break")."""

    @model_validator(mode="after")
    def _consistent(self) -> RelationsChangedData:
        _unique(self.parties, "parties")
        _not_in(self.mediator, self.parties, "mediator", "parties")
        return self

    def refined_cameo(self) -> str:
        return RELATION_CHANGE_CAMEO[self.change]


class PartnershipDeclaredData(Occurrence):
    """A declared alignment and its label: China and Russia's "no limits" partnership."""

    parties: Parties
    label: Label

    @model_validator(mode="after")
    def _consistent(self) -> PartnershipDeclaredData:
        _unique(self.parties, "parties")
        return self


# --- positions ------------------------------------------------------------------------------

StancePosition = Literal["supports", "opposes", "neutral"]


class StanceDeclaredData(Occurrence):
    """A party's stance on an issue: China, neutral on the Russia-Ukraine war."""

    party: ActorCode
    issue: Text
    position: StancePosition
    regarding: Actors = ()
    """The parties the issue is about (the sides of a conflict)."""
    aligned_with: Actors = ()
    """Parties the declaring party names as partners in this stance."""
    speaker: Person | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StanceDeclaredData:
        _unique(self.regarding, "regarding")
        _unique(self.aligned_with, "aligned_with")
        _not_in(self.party, self.aligned_with, "party", "aligned_with")
        return self


StatementKind = Literal["accuse", "blame", "criticise", "praise", "appeal", "comment"]


class StatementMadeData(Occurrence):
    """A party speaks of others: China blames NATO and the United States."""

    by: ActorCode
    kind: StatementKind
    targets: Actors = ()
    about: Text | None = None
    speaker: Person | None = None
    quote: Quote | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StatementMadeData:
        _unique(self.targets, "targets")
        _not_in(self.by, self.targets, "by", "targets")
        return self

    def refined_cameo(self) -> str:
        return STATEMENT_KIND_CAMEO[self.kind]


class ProposalMadeData(Occurrence):
    """A plan put forward: China's peace plan for Ukraine."""

    proposal_id: Slug
    by: ActorCode
    title: Label
    issue: Text | None = None
    regarding: Actors = ()

    @model_validator(mode="after")
    def _consistent(self) -> ProposalMadeData:
        _unique(self.regarding, "regarding")
        _not_in(self.by, self.regarding, "by", "regarding")
        return self


class ProposalRejectedData(Occurrence):
    """A plan dismissed, by named parties or by a described group ("supporters of Ukraine")."""

    proposal_id: Slug
    proposer: ActorCode
    by: Actors = ()
    by_description: Text | None = None
    extent: Literal["wholly", "largely", "partly"] = "wholly"
    reason: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ProposalRejectedData:
        if not self.by and self.by_description is None:
            raise field_error(
                ("by",),
                "missing_rejecter",
                "name who rejected the proposal in by, or describe them in by_description",
                list(self.by),
            )
        _unique(self.by, "by")
        for index, party in enumerate(self.by):
            if party == self.proposer:
                raise field_error(
                    ("by", index),
                    "overlap",
                    "the proposer cannot reject its own proposal",
                    party,
                )
        return self


# --- conflict -------------------------------------------------------------------------------


class IncidentOccurredData(Occurrence):
    """An incident between parties: a suspected Chinese spy balloon shot down by the US."""

    parties: Parties
    summary: Text
    kind: Label | None = None
    locations: Annotated[tuple[CountryCode, ...], Field(max_length=MAX_PARTIES)] = ()

    @model_validator(mode="after")
    def _consistent(self) -> IncidentOccurredData:
        _unique(self.parties, "parties")
        _unique(self.locations, "locations")
        return self


# --- imports --------------------------------------------------------------------------------


class EventCodedData(Payload):
    """A two-party CAMEO-coded event, as GDELT and ICEWS imports become. Exactly these fields."""

    actor1: ActorCode
    actor2: ActorCode
    cameo: CameoCode
    goldstein: Goldstein | None = None
    occurred: When
    source_url: HttpUrl | None = None
    mentions: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None

    @property
    def when(self) -> When:
        return self.occurred


# --- corrections ----------------------------------------------------------------------------


class EventRetractedData(Payload):
    """Names an earlier event; the projections then behave as if it had never been.

    A retraction cannot be retracted: a correction is final (a new event restates a fact).
    """

    target: EventRef
    reason: Text | None = None


# --- the envelopes ---------------------------------------------------------------------------


class EnvoyAppointed(EventEnvelope):
    type: Literal["diplomacy.envoy.appointed"]
    data: EnvoyAppointedData


class VisitAnnounced(EventEnvelope):
    type: Literal["diplomacy.visit.announced"]
    data: VisitAnnouncedData


class VisitLegStarted(EventEnvelope):
    type: Literal["diplomacy.visit.leg.started"]
    data: VisitLegData


class VisitLegCompleted(EventEnvelope):
    type: Literal["diplomacy.visit.leg.completed"]
    data: VisitLegData


class VisitPostponed(EventEnvelope):
    type: Literal["diplomacy.visit.postponed"]
    data: VisitPostponedData


class VisitRescheduled(EventEnvelope):
    type: Literal["diplomacy.visit.rescheduled"]
    data: VisitRescheduledData


class VisitCancelled(EventEnvelope):
    type: Literal["diplomacy.visit.cancelled"]
    data: VisitCancelledData


class VisitCompleted(EventEnvelope):
    type: Literal["diplomacy.visit.completed"]
    data: VisitCompletedData


class MeetingHeld(EventEnvelope):
    type: Literal["diplomacy.meeting.held"]
    data: MeetingHeldData


class RelationsChanged(EventEnvelope):
    type: Literal["diplomacy.relations.changed"]
    data: RelationsChangedData


class PartnershipDeclared(EventEnvelope):
    type: Literal["diplomacy.partnership.declared"]
    data: PartnershipDeclaredData


class StanceDeclared(EventEnvelope):
    type: Literal["diplomacy.stance.declared"]
    data: StanceDeclaredData


class StatementMade(EventEnvelope):
    type: Literal["diplomacy.statement.made"]
    data: StatementMadeData


class ProposalMade(EventEnvelope):
    type: Literal["diplomacy.proposal.made"]
    data: ProposalMadeData


class ProposalRejected(EventEnvelope):
    type: Literal["diplomacy.proposal.rejected"]
    data: ProposalRejectedData


class IncidentOccurred(EventEnvelope):
    type: Literal["diplomacy.incident.occurred"]
    data: IncidentOccurredData


class EventCoded(EventEnvelope):
    type: Literal["diplomacy.event.coded"]
    data: EventCodedData


class EventRetracted(EventEnvelope):
    type: Literal["diplomacy.event.retracted"]
    data: EventRetractedData

    @field_validator("data")
    @classmethod
    def _not_itself(cls, data: EventRetractedData, info: ValidationInfo) -> EventRetractedData:
        if data.target.source == info.data.get("source") and data.target.id == info.data.get("id"):
            raise field_error(
                ("target",), "retracts_itself", "an event cannot retract itself", str(data.target)
            )
        return data


@same_check_as(EventRetracted._not_itself)
def _plain_not_itself(event: Any) -> bool:
    target = event.data.target
    return not (target.source == event.source and target.id == event.id)


AnyEvent: TypeAlias = (
    EnvoyAppointed
    | VisitAnnounced
    | VisitLegStarted
    | VisitLegCompleted
    | VisitPostponed
    | VisitRescheduled
    | VisitCancelled
    | VisitCompleted
    | MeetingHeld
    | RelationsChanged
    | PartnershipDeclared
    | StanceDeclared
    | StatementMade
    | ProposalMade
    | ProposalRejected
    | IncidentOccurred
    | EventCoded
    | EventRetracted
)
"""The union of every event class."""

Event = Annotated[AnyEvent, Field(discriminator="type")]
"""Any Chancery event: the union, discriminated on `type`."""

EventClass = type[AnyEvent]


def _tag(cls: type[EventEnvelope]) -> str:
    (tag,) = get_args(cls.model_fields["type"].annotation)
    return str(tag)


EVENT_TYPES: Mapping[str, EventClass] = MappingProxyType(
    {_tag(cls): cls for cls in get_args(get_args(Event)[0])}
)
"""Type name -> event class, in catalogue order."""

TRIP_TYPES = frozenset(name for name in EVENT_TYPES if name.startswith("diplomacy.visit."))


# --- coding: the CAMEO code and Goldstein value each event counts with ------------------------


def effective_cameo(event: Event) -> str | None:
    """The event's CAMEO code: its own, else what its fields imply, else its type's default.

    None only for a retraction, which is a correction rather than an interaction.
    """
    data = event.data
    if isinstance(data, EventCodedData):
        return data.cameo
    if isinstance(data, Occurrence):
        return data.cameo or data.refined_cameo() or DEFAULT_CAMEO[event.type]
    return None


def effective_goldstein(event: Event) -> float | None:
    """The event's Goldstein value: its own, else its CAMEO code's in the table."""
    data = event.data
    if isinstance(data, EventCodedData | Occurrence) and data.goldstein is not None:
        return data.goldstein
    code = effective_cameo(event)
    return None if code is None else lookup(code).goldstein


def quad_class(event: Event) -> QuadClass | None:
    """CAMEO quad class 1-4 of the event's code (verbal/material cooperation/conflict)."""
    code = effective_cameo(event)
    return None if code is None else lookup(code).quad_class


RETRACTION = "diplomacy.event.retracted"


def retraction_target(event: Event) -> tuple[str, str] | None:
    """(source, id) of the event a retraction names; None for any other event."""
    return target_of(event.type, event.data)


def target_of(type_name: str, data: Any) -> tuple[str, str] | None:
    """`retraction_target` of an event of type `type_name` whose payload is `data`: a model,
    or its plain twin (plain.py), which has the same field names."""
    if type_name == RETRACTION:
        return data.target.source, data.target.id
    return None
