"""The fast path of `diplomacy.event.coded` (GDELT and ICEWS imports: nearly all real traffic).

What a coded event between two actors writes depends on its pair, on its day, CAMEO code and
Goldstein value, and on its identity; the pair and the facts repeat from event to event. So
the fast path keeps no rule of its own: it asks the domain what a pair's events touch
(`timeline_refs`) and what the facts add (`relation_effects`) once, for the first event that
has them, and remembers the answers as keys and fields. Each event then adds only what its
identity changes: its order code in the timeline and contact members, its place in the
stream. Events with the same pair and facts are counted once per batch, and a pair's
timeline gets the batch's members in one operation.

What it writes is what the general fold (`effects.add_effects`) writes for the same events:
the property tests in tests/unit/projector fold arbitrary logs both ways.
"""

from __future__ import annotations

from collections import defaultdict
from enum import Enum

from chancery import keyspace
from chancery.contract import EventCoded
from chancery.domain.ordering import occurred_of
from chancery.domain.relations import RelationEffect, relation_effects
from chancery.domain.timelines import TimelineRefs, timeline_refs

from .partition_keys import Memo, PartitionKeys
from .plan import WritePlan


class CodedPair:
    """What a coded event of one pair touches, but for its day and identity: the keys of the
    pair's single timeline pair (`timeline_refs`: both actors are in it, none is solo), which
    are its relation's too."""

    __slots__ = ("contacts", "days", "partners", "timeline", "timeline_partners")

    def __init__(self, keys: PartitionKeys, refs: TimelineRefs) -> None:
        [pair] = refs.pairs
        self.days = keys.relation(pair.key, "days")
        self.contacts = keys.relation(pair.key, "contacts")
        # the relation index: (key, field) of both directions
        self.partners = (
            (keys.partners(pair.first), pair.second),
            (keys.partners(pair.second), pair.first),
        )
        self.timeline = keys.pair_timeline(pair.key)
        self.timeline_partners = (
            (keys.timeline_partners(pair.first), pair.second),
            (keys.timeline_partners(pair.second), pair.first),
        )


class CodedFacts:
    """What a coded event's day, code and Goldstein value add to its pair (the one effect of
    `relation_effects`), as plain values; members are the event's order code + a tail."""

    __slots__ = ("contact_tail", "count", "day_fields", "sort_code", "type_code")

    def __init__(self, effect: RelationEffect, event: EventCoded) -> None:
        self.day_fields = tuple(keyspace.day_fields(effect.day, effect.bucket).items())
        self.count = effect.bucket.count  # what it adds to the relation index
        contact = effect.contact
        # keyspace.contact_member and stored_timeline_member, but for the order code they
        # start with (and the place a timeline member ends with)
        self.contact_tail = (
            None if contact is None else keyspace.contact_member_of("", contact.kind, contact.when)
        )
        self.type_code = keyspace.TYPE_CODES[event.type]
        self.sort_code = keyspace.sort_code(occurred_of(event))

    @classmethod
    def of(cls, event: EventCoded) -> CodedFacts | None:
        """The facts of `event`; None when its effect is more than a day count and a contact
        (the general fold takes it)."""
        effects = list(relation_effects(event).values())
        if len(effects) != 1:
            return None
        [effect] = effects
        if effect.status or effect.partnership or effect.plan:
            return None
        return cls(effect, event)


class _Unknown(Enum):
    UNKNOWN = 0


UNKNOWN = _Unknown.UNKNOWN
"""Not met yet (None, remembered, means: the general fold takes such events)."""

_FACTS: Memo[tuple[str, str, float | None], CodedFacts | None] = Memo()
"""Facts of coded events, by (occurred's text, code, Goldstein value): the same in every
partition. (`When` compares by its text, through Python methods: the text is a cheaper key.)"""


class CodedPairs:
    """The pairs of the coded events met in one partition space, remembered."""

    def __init__(self, keys: PartitionKeys) -> None:
        self._keys = keys
        self.known: Memo[tuple[str, str], CodedPair | None] = Memo()

    def of(self, event: EventCoded) -> CodedPair | None:
        """The keys of the event's pair, remembered by (actor1, actor2); None when the event
        is not of exactly one pair (an actor with itself: the general fold takes it)."""
        refs = timeline_refs(event)
        pair = CodedPair(self._keys, refs) if len(refs.pairs) == 1 else None
        return self.known.remember((event.data.actor1, event.data.actor2), pair)


class CodedEvents:
    """The coded events of one batch that take the fast path, folded into its changes."""

    __slots__ = ("_contacts", "_known", "_pairs", "_sources", "_stream", "counts", "members")

    def __init__(
        self, pairs: CodedPairs, stream: list[int], contacts: dict[str, dict[str, bool]]
    ) -> None:
        self._pairs = pairs
        self._known = pairs.known
        self._stream = stream
        self._contacts = contacts
        self._sources: dict[str, str] = {}  # source -> its code in members
        # each pair's timeline members, and how many events there are of each (pair, facts):
        # counted once per batch, not per event
        self.members: dict[CodedPair, list[str]] = defaultdict(list)
        self.counts: dict[tuple[CodedPair, CodedFacts], int] = defaultdict(int)

    def add(self, event: EventCoded, ident: str, offset: int) -> bool:
        """Fold a new, unretracted coded event; False when the general fold must take it."""
        data = event.data
        pair = self._known.get((data.actor1, data.actor2), UNKNOWN)
        if pair is UNKNOWN:
            pair = self._pairs.of(event)
        if pair is None:
            return False
        k = (data.occurred.text, data.cameo, data.goldstein)
        facts = _FACTS.get(k, UNKNOWN)
        if facts is UNKNOWN:
            facts = _FACTS.remember(k, CodedFacts.of(event))
        if facts is None:
            return False
        self._stream.append(offset)  # WritePlan.xadd
        self.counts[(pair, facts)] += 1  # its day fields and relation index
        source = self._sources.get(event.source)
        if source is None:
            source = self._sources[event.source] = keyspace.source_code(event.source)
        order = f"{facts.sort_code}{source}{event.id} "  # keyspace.order_code
        if facts.contact_tail is not None:
            self._contacts[pair.contacts][order + facts.contact_tail] = True
        self.members[pair].append(order + facts.type_code + keyspace.place_code(offset))
        return True

    def emit(
        self,
        plan: WritePlan,
        counters: dict[tuple[str, str], int],
        sets: dict[str, set[str]],
        removed: set[str],
    ) -> None:
        """The timeline members into `plan`, the counts into `counters`, the timeline
        partners into `sets`; members in `removed` (added, then retracted in the same batch)
        are not written at all."""
        for pair, added in self.members.items():
            kept = [m for m in added if m not in removed] if removed else added
            plan.zadd_lex_each((pair.timeline,), kept)
            for key, partner in pair.timeline_partners:
                sets[key].add(partner)
        for (pair, facts), n in self.counts.items():
            days = pair.days
            for name, value in facts.day_fields:
                counters[(days, name)] += n * value
            first, second = pair.partners
            counters[first] += n * facts.count
            counters[second] += n * facts.count
