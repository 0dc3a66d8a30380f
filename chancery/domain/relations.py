"""The state of the relation between two actors, as a mergeable ledger and a view of it.

The fold is three steps, and the projector runs the same three over Redis:

1. `relation_effects(event)`: what one event contributes to each pair it touches;
2. `RelationLedger.apply(effect)` (and `remove(effect)` for a retraction): the effects
   accumulated in parts that Redis structures mirror one to one, per Kafka partition;
3. `view(pair, ledger, today=..., as_of=...)`: the `RelationState` read from the ledger.

A pair's ledger (`PairLedger`) has five parts:

- `days`: day -> `DayBucket` of additive integers (event count, counts per quad class, sum of
  Goldstein values in tenths). Integers, so adding and subtracting is exact and `merge` is
  plain addition (a Redis hash per pair, `HINCRBY` per field);
- `statuses`, `partnerships`, `contacts`, `plans`: entries keyed by `event_key`, each with
  its `when` and event, queried as "latest whose `when` starts on or before D" or "earliest
  after D" (a sorted set plus a hash per part). Merging is a union of disjoint keys.

A ledger is built from effective events (one per identity, see `history`): `apply` adds and
does not deduplicate. Because every part is either a sum or a keyed union, the ledger of a
set of events is the same whatever order they came in, and `merge(ledger(A), ledger(B)) ==
ledger(A | B)` for disjoint A and B: each partition can keep its own ledger and a reader
merges them.

Score: see `score_of`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Literal, TypeVar, assert_never

from pydantic import BaseModel, ConfigDict, model_validator

from chancery.contract import (
    ActorCode,
    EnvoyAppointedData,
    Event,
    EventCodedData,
    EventRef,
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
    VisitLegData,
    When,
    cameo,
    day_bound,
    effective_cameo,
    effective_goldstein,
)
from chancery.contract.catalogue import RelationChange
from chancery.contract.routing import PARTY_SEPARATOR

from .history import effective, recorded_by
from .itineraries import leg_plans
from .ordering import OrderKey, occurred_of

Status = Literal["unknown", "full", "downgraded", "suspended", "severed"]
Climate = Literal["hostile", "strained", "neutral", "cordial", "close"]
ContactKind = Literal["meeting", "phone", "video", "visit"]

STATUS_AFTER: Mapping[RelationChange, Status] = {
    "established": "full",
    "restored": "full",
    "upgraded": "full",
    "downgraded": "downgraded",
    "suspended": "suspended",
    "severed": "severed",
}

HALF_LIFE_DAYS = 90.0
"""Half-life of an event's weight in the score. See `score_of` for why."""

CLIMATE_BOUNDS: tuple[tuple[float, Climate], ...] = (
    (-5.0, "hostile"),  # score < -5
    (-1.0, "strained"),  # -5 <= score < -1
    (1.0, "neutral"),  # -1 <= score <= 1
    (5.0, "cordial"),  # 1 < score <= 5
)
"""Upper bounds of each climate; above 5 it is "close"."""


class Pair(BaseModel):
    """An unordered pair of actors, stored sorted: `Pair.of("USA", "CHN")` is CHN|USA."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first: ActorCode
    second: ActorCode

    @model_validator(mode="after")
    def _sorted(self) -> Pair:
        if not self.first < self.second:
            raise ValueError("a pair is two different actors in sorted order (use Pair.of)")
        return self

    @classmethod
    def of(cls, a: str, b: str) -> Pair:
        """The pair of `a` and `b`, validated. One instance per pair (a pair is immutable):
        folds ask for the same few pairs again and again."""
        return _pair_of(cls, a, b)

    @classmethod
    def parse(cls, key: str) -> Pair:
        """From its key, `"CHN|USA"` (either order)."""
        a, sep, b = key.partition("|")
        if not sep:
            raise ValueError(f"not a pair key: {key[:20]!r}")
        return cls.of(a, b)

    @property
    def key(self) -> str:
        """`party_key` of the two (they are distinct and sorted: no need to sort again)."""
        return f"{self.first}{PARTY_SEPARATOR}{self.second}"

    def other(self, actor: str) -> str:
        return self.second if actor == self.first else self.first

    def __str__(self) -> str:
        return self.key


PAIR_CACHE_SIZE = 16_384
"""Distinct pairs remembered by `Pair.of` (bounded: unknown codes only evict)."""


@lru_cache(maxsize=PAIR_CACHE_SIZE)
def _pair_of(cls: type[Pair], a: str, b: str) -> Pair:
    first, second = sorted((a.upper(), b.upper()))
    return cls(first=first, second=second)


def _pairs(actors: Iterable[str]) -> frozenset[Pair]:
    return frozenset(Pair.of(a, b) for a, b in itertools.combinations(sorted(set(actors)), 2))


def _across(one: str, others: Iterable[str]) -> frozenset[Pair]:
    return frozenset(Pair.of(one, other) for other in others if other != one)


def pairs_of(event: Event) -> frozenset[Pair]:
    """The pairs whose relation the event is part of.

    Parties with each other (meetings also with their mediator); a speaker with its targets;
    a traveller's state or organisation with each destination; nothing for an appointment
    (one party) or a retraction.
    """
    data = event.data
    match data:
        case TripPayload():
            return _across(data.traveller.actor, leg_plans(event))
        case MeetingHeldData():
            return _pairs((*data.parties, *([data.mediator] if data.mediator else [])))
        case RelationsChangedData() | PartnershipDeclaredData() | IncidentOccurredData():
            return _pairs(data.parties)
        case StanceDeclaredData():
            return _across(data.party, data.aligned_with)
        case StatementMadeData():
            return _across(data.by, data.targets)
        case ProposalMadeData():
            return _across(data.by, data.regarding)
        case ProposalRejectedData():
            return frozenset(Pair.of(by, data.proposer) for by in data.by)
        case EventCodedData():
            return _pairs((data.actor1, data.actor2))
        case EnvoyAppointedData() | EventRetractedData():
            return frozenset()
        case _:
            assert_never(data)


# --- ledger parts ---------------------------------------------------------------------------


class DayBucket(BaseModel):
    """Additive integers of one pair on one day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = 0
    quads: tuple[int, int, int, int] = (0, 0, 0, 0)
    goldstein_tenths: int = 0

    @classmethod
    def one(cls, quad: int, goldstein_tenths: int) -> DayBucket:
        """One event of quad class `quad` (1-4). One instance per (quad, value)."""
        return _one_bucket(cls, quad, goldstein_tenths)

    def plus(self, other: DayBucket, sign: int = 1) -> DayBucket:
        a, b = self.quads, other.quads
        # Integers from integers: nothing to validate.
        return DayBucket.model_construct(
            count=self.count + sign * other.count,
            quads=(a[0] + sign * b[0], a[1] + sign * b[1], a[2] + sign * b[2], a[3] + sign * b[3]),
            goldstein_tenths=self.goldstein_tenths + sign * other.goldstein_tenths,
        )

    @property
    def is_empty(self) -> bool:
        return self.count == 0 and self.goldstein_tenths == 0 and not any(self.quads)


@lru_cache(maxsize=4096)
def _one_bucket(cls: type[DayBucket], quad: int, goldstein_tenths: int) -> DayBucket:
    quads = [0, 0, 0, 0]
    quads[quad - 1] = 1
    return cls(
        count=1,
        quads=(quads[0], quads[1], quads[2], quads[3]),
        goldstein_tenths=goldstein_tenths,
    )


NO_EVENTS = DayBucket()
"""The empty bucket: what an event derived from another one adds to the day counts."""


class Entry(BaseModel):
    """A keyed entry: the event it comes from and when that event occurred."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    when: When
    event: EventRef

    @property
    def order(self) -> OrderKey:
        return self.when.sort_key(), self.event.source, self.event.id


_E = TypeVar("_E", bound=Entry)


class StatusEntry(Entry):
    change: RelationChange
    status: Status
    mediator: str | None = None


class PartnershipEntry(Entry):
    label: str


class ContactEntry(Entry):
    kind: ContactKind


class PlanEntry(Entry):
    """What the event says of one leg's plan: its dates, or None (no longer planned).

    `leg` is `traveller/trip/country`; the latest entry of each leg is its current plan.
    """

    leg: str
    planned: When | None = None


class RelationEffect(BaseModel):
    """What one event contributes to one pair."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pair: Pair
    event_key: str
    day: date
    bucket: DayBucket
    status: StatusEntry | None = None
    partnership: PartnershipEntry | None = None
    contact: ContactEntry | None = None
    plan: PlanEntry | None = None


_CODED_CONTACT_KINDS: Mapping[str, ContactKind] = {"041": "phone", "042": "visit", "043": "visit"}
"""Consultations (04x) that are not meetings in person; the rest of 04x are."""


def coded_contact_kind(code: str) -> ContactKind | None:
    """The kind of contact a coded event with CAMEO `code` is; None when it is none."""
    if code.startswith(cameo.CONTACT_ROOT):
        return _CODED_CONTACT_KINDS.get(code, "meeting")
    return None


def _contact_kind(event: Event) -> ContactKind | None:
    data = event.data
    match data:
        case MeetingHeldData():
            return "meeting" if data.mode == "in_person" else data.mode
        case VisitLegData():
            return "visit"
        case EventCodedData():
            return coded_contact_kind(data.cameo)
    return None


def is_derived(event: Event) -> bool:
    """An importer's meeting or visit leg read off coded events' CAMEO codes: the coded
    events already count the interaction."""
    data = event.data
    return isinstance(data, MeetingHeldData | VisitLegData) and data.derived is True


def relation_effects(event: Event) -> Mapping[Pair, RelationEffect]:
    """Pair -> what `event` adds to that pair's ledger (empty for events with no pair).

    A derived event (`is_derived`) adds its contact and plan but nothing to the day counts:
    the coded events it was read from already count that interaction.

    The entries are built with `model_construct`: every part comes from a validated event.
    """
    pairs = pairs_of(event)
    code = effective_cameo(event)
    goldstein = effective_goldstein(event)
    if not pairs or code is None or goldstein is None:
        return {}
    when = occurred_of(event)
    ref = EventRef.model_construct(source=event.source, id=event.id)
    key = event.key
    bucket = (
        NO_EVENTS
        if is_derived(event)
        else DayBucket.one(cameo.lookup(code).quad_class, round(goldstein * 10))
    )
    day = when.first_day
    data = event.data
    status = None
    partnership = None
    if isinstance(data, RelationsChangedData):
        status = StatusEntry.model_construct(
            when=when,
            event=ref,
            change=data.change,
            status=STATUS_AFTER[data.change],
            mediator=data.mediator,
        )
    if isinstance(data, PartnershipDeclaredData):
        partnership = PartnershipEntry.model_construct(when=when, event=ref, label=data.label)
    kind = _contact_kind(event)
    contact = (
        ContactEntry.model_construct(when=when, event=ref, kind=kind) if kind is not None else None
    )
    trip = data if isinstance(data, TripPayload) else None
    plans = leg_plans(event) if trip is not None else {}
    effects: dict[Pair, RelationEffect] = {}
    for pair in sorted(pairs, key=str):
        plan = None
        if trip is not None:
            country = pair.other(trip.traveller.actor)
            plan = PlanEntry.model_construct(
                when=when,
                event=ref,
                leg=f"{trip.traveller.id}/{trip.trip_id}/{country}",
                planned=plans[country],
            )
        effects[pair] = RelationEffect.model_construct(
            pair=pair,
            event_key=key,
            day=day,
            bucket=bucket,
            status=status,
            partnership=partnership,
            contact=contact,
            plan=plan,
        )
    return effects


# --- the ledger -----------------------------------------------------------------------------


def _put(part: dict[str, _E], key: str, entry: _E | None) -> None:
    if entry is not None:
        part[key] = entry


def _drop(part: dict[str, _E], key: str, entry: _E | None) -> None:
    if entry is not None:
        part.pop(key, None)


@dataclass
class PairLedger:
    """One pair's share of the ledger (of one partition, or merged)."""

    days: dict[date, DayBucket] = field(default_factory=dict)
    statuses: dict[str, StatusEntry] = field(default_factory=dict)
    partnerships: dict[str, PartnershipEntry] = field(default_factory=dict)
    contacts: dict[str, ContactEntry] = field(default_factory=dict)
    plans: dict[str, PlanEntry] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (self.days or self.statuses or self.partnerships or self.contacts or self.plans)

    def apply(self, effect: RelationEffect) -> None:
        self._add_bucket(effect.day, effect.bucket, 1)
        key = effect.event_key
        _put(self.statuses, key, effect.status)
        _put(self.partnerships, key, effect.partnership)
        _put(self.contacts, key, effect.contact)
        _put(self.plans, key, effect.plan)

    def remove(self, effect: RelationEffect) -> None:
        """Undo `apply(effect)`: what a retraction of the effect's event does."""
        self._add_bucket(effect.day, effect.bucket, -1)
        key = effect.event_key
        _drop(self.statuses, key, effect.status)
        _drop(self.partnerships, key, effect.partnership)
        _drop(self.contacts, key, effect.contact)
        _drop(self.plans, key, effect.plan)

    def _add_bucket(self, day: date, bucket: DayBucket, sign: int) -> None:
        total = self.days.get(day, DayBucket()).plus(bucket, sign)
        if total.is_empty:
            self.days.pop(day, None)
        else:
            self.days[day] = total

    def merged(self, other: PairLedger) -> PairLedger:
        """Both shares as one: buckets added, entries united."""
        days = dict(self.days)
        for day, bucket in other.days.items():
            total = days.get(day, DayBucket()).plus(bucket)
            if total.is_empty:
                days.pop(day, None)
            else:
                days[day] = total
        return PairLedger(
            days=days,
            statuses={**self.statuses, **other.statuses},
            partnerships={**self.partnerships, **other.partnerships},
            contacts={**self.contacts, **other.contacts},
            plans={**self.plans, **other.plans},
        )


class RelationLedger:
    """The ledgers of every pair. Mutable while it is built; `merge` returns a new one."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Mapping[Pair, PairLedger] | None = None) -> None:
        self._pairs: dict[Pair, PairLedger] = {
            pair: ledger for pair, ledger in (pairs or {}).items() if not ledger.is_empty
        }

    def apply(self, effect: RelationEffect) -> None:
        self._pairs.setdefault(effect.pair, PairLedger()).apply(effect)

    def remove(self, effect: RelationEffect) -> None:
        ledger = self._pairs.get(effect.pair)
        if ledger is not None:
            ledger.remove(effect)
            if ledger.is_empty:
                del self._pairs[effect.pair]

    def pair(self, pair: Pair) -> PairLedger:
        """The pair's share (empty if the pair has no events). Read it; do not mutate it."""
        return self._pairs.get(pair) or PairLedger()

    @property
    def pairs(self) -> frozenset[Pair]:
        return frozenset(self._pairs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RelationLedger) and self._pairs == other._pairs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RelationLedger({len(self._pairs)} pairs)"


def merge(a: RelationLedger, b: RelationLedger) -> RelationLedger:
    """The ledger of both: commutative and associative, so partitions merge in any order."""
    pairs = {pair: a.pair(pair).merged(b.pair(pair)) for pair in a.pairs | b.pairs}
    return RelationLedger(pairs)


def build_ledger(events: Iterable[Event]) -> RelationLedger:
    """The ledger of effective events (see `history.effective`; `apply` does not dedupe)."""
    ledger = RelationLedger()
    for event in events:
        for effect in relation_effects(event).values():
            ledger.apply(effect)
    return ledger


# --- the view -------------------------------------------------------------------------------


class ContactView(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    when: When
    kind: ContactKind
    event: EventRef


class PartnershipView(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    since: When
    event_ids: tuple[EventRef, ...]


class RelationState(BaseModel):
    """What a reader wants to know about a pair, as of a day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pair: Pair
    as_of: date
    status: Status
    status_since: When | None
    status_event_ids: tuple[EventRef, ...]
    mediator: str | None
    partnership: PartnershipView | None
    score: float
    climate: Climate
    event_count: int
    quad_counts: dict[str, int]
    last_contact: ContactView | None
    next_contact: ContactView | None


def climate_of(score: float) -> Climate:
    for bound, climate in CLIMATE_BOUNDS:
        if score < bound or (climate in {"neutral", "cordial"} and score <= bound):
            return climate
    return "close"


def score_of(days: Mapping[date, DayBucket]) -> float:
    """Decayed mean Goldstein value of the buckets, in [-10, 10], to 2 decimals.

    Each event weighs 0.5 ** (age_days / HALF_LIFE_DAYS). Why 90 days: diplomatic climates
    move over months, not news cycles. February's balloon crisis still weighs about half in
    May and a year-old crisis a sixteenth; a shorter half-life lets one meeting swing the
    score, a longer one hides a thaw. Why a mean and not a sum: the score is the tone of the
    relation, not its volume (a pair in the news more is not for that "closer"), and a mean
    of Goldstein values stays within their [-10, 10].
    A mean does not change when every age grows alike, so ages counted from the as-of day
    or from the newest bucket give the same score; the newest bucket is used (no underflow
    for old events). It also means a pair that goes quiet keeps its last climate instead of
    drifting to neutral; `last_contact` and `event_count` say how old that reading is.
    """
    included = sorted((day, bucket) for day, bucket in days.items() if bucket.count)
    if not included:
        return 0.0
    newest = included[-1][0]
    weighted_sum = 0.0
    weight = 0.0
    for day, bucket in included:
        w = 0.5 ** ((newest - day).days / HALF_LIFE_DAYS)
        weighted_sum += w * bucket.goldstein_tenths / 10
        weight += w * bucket.count
    return round(max(-10.0, min(10.0, weighted_sum / weight)), 2)


def _latest_run(entries: Iterable[_E], value: Callable[[_E], object]) -> list[_E]:
    """The latest entries, in order, that share the latest entry's `value`.

    "Since when" is the start of this run: restored in March then upgraded in June is
    "full since March", backed by both events.
    """
    ordered = sorted(entries, key=lambda entry: entry.order)
    run: list[_E] = []
    for entry in reversed(ordered):
        if run and value(entry) != value(run[0]):
            break
        run.insert(0, entry)
    return run


def _status(entry: StatusEntry) -> Status:
    return entry.status


def _most_precise(entries: Iterable[StatusEntry]) -> list[StatusEntry]:
    """The entries, less those a finer report of the same change makes precise.

    "Restored in March" (an article) and "restored on 10 March" (the joint statement) are
    one change, on 10 March: the month's report is set aside, so the state is "full since
    10 March" and, as of 9 March, not yet full. A finer report is one whose time lies
    strictly inside the other's.
    """
    entries = list(entries)
    return [
        entry
        for entry in entries
        if not any(
            other.change == entry.change
            and entry.when.contains(other.when)
            and not other.when.contains(entry.when)
            for other in entries
        )
    ]


def _earliest(candidates: Iterable[ContactView]) -> ContactView | None:
    return min(
        candidates,
        key=lambda c: (c.when.sort_key(), c.event.source, c.event.id),
        default=None,
    )


def view(
    pair: Pair, ledger: RelationLedger, *, today: date, as_of: date | None = None
) -> RelationState:
    """The pair's state read from the ledger.

    With `as_of=D`, only what occurred by D counts (entries and buckets that start on or
    before D), and D is the day "last" and "next" are measured from. Without it everything
    in the ledger counts, and `today` is that day: a meeting dated after today is then the
    next contact, not the last.
    A plan is pending (a candidate for next contact) while its dates have not ended by the
    reference day, so a trip planned for "next week" is still next during that week until
    its leg starts.
    """
    reference = as_of or today
    bound = day_bound(reference)
    share = ledger.pair(pair)

    def counts(entry: Entry) -> bool:
        return as_of is None or entry.when.sort_key() < bound

    days = {d: b for d, b in share.days.items() if as_of is None or d <= as_of}
    statuses = _latest_run(filter(counts, _most_precise(share.statuses.values())), _status)
    partnerships = _latest_run(filter(counts, share.partnerships.values()), lambda e: e.label)
    contacts = sorted(filter(counts, share.contacts.values()), key=lambda e: e.order)
    past = [c for c in contacts if c.when.sort_key() < bound]
    plans: dict[str, PlanEntry] = {}
    for plan in sorted(filter(counts, share.plans.values()), key=lambda e: e.order):
        plans[plan.leg] = plan
    upcoming = [
        ContactView(when=c.when, kind=c.kind, event=c.event)
        for c in contacts
        if c.when.sort_key() >= bound
    ] + [
        ContactView(when=p.planned, kind="visit", event=p.event)
        for p in plans.values()
        if p.planned is not None and p.planned.ends_after(reference)
    ]
    score = score_of(days)
    quads = [sum(b.quads[i] for b in days.values()) for i in range(4)]
    return RelationState(
        pair=pair,
        as_of=reference,
        status=statuses[-1].status if statuses else "unknown",
        status_since=statuses[0].when if statuses else None,
        status_event_ids=tuple(e.event for e in statuses),
        mediator=next((e.mediator for e in statuses if e.mediator), None),
        partnership=PartnershipView(
            label=partnerships[-1].label,
            since=partnerships[0].when,
            event_ids=tuple(e.event for e in partnerships),
        )
        if partnerships
        else None,
        score=score,
        climate=climate_of(score),
        event_count=sum(b.count for b in days.values()),
        quad_counts={str(i + 1): quads[i] for i in range(4)},
        last_contact=ContactView(when=past[-1].when, kind=past[-1].kind, event=past[-1].event)
        if past
        else None,
        next_contact=_earliest(upcoming),
    )


def fold_relation(
    pair: Pair,
    events: Iterable[Event],
    *,
    today: date,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> RelationState:
    """The pair's state from events: effects -> ledger -> view, as the projector does.

    `known_at=K` keeps only events recorded by K (retractions recorded later do not apply);
    `as_of=D` reads the ledger as of day D (see `view`).
    """
    chosen = list(events) if known_at is None else recorded_by(events, known_at)
    ledger = build_ledger(e for e in effective(chosen) if pair in pairs_of(e))
    return view(pair, ledger, today=today, as_of=as_of)
