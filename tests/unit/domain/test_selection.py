"""The filter the live stream and webhooks share: what each criterion chooses."""

from __future__ import annotations

import pytest

from chancery.contract import EVENT_TYPES
from chancery.domain.relations import Pair
from chancery.domain.selection import EventFilter, people_of
from chancery.domain.timelines import actors_of
from tests.unit.contract.examples import example_event

pytestmark = pytest.mark.unit


def test_no_criterion_chooses_everything() -> None:
    for name in EVENT_TYPES:
        assert EventFilter().accepts_event(example_event(name))


def test_people_named_by_each_kind_of_event() -> None:
    assert people_of(example_event("diplomacy.envoy.appointed")) == {"li-hui"}
    assert "li-hui" in people_of(example_event("diplomacy.visit.announced"))
    assert people_of(example_event("diplomacy.visit.leg.started")) == {"li-hui"}
    assert people_of(example_event("diplomacy.event.coded")) == frozenset()


def test_kinds_combine_and_values_of_a_kind_alternate() -> None:
    event = example_event("diplomacy.meeting.held")
    actors = sorted(actors_of(event))
    assert EventFilter(countries=frozenset({actors[0], "ZZZ"})).accepts_event(event)
    assert not EventFilter(countries=frozenset({"ZZZ"})).accepts_event(event)
    both = EventFilter(types=frozenset({event.type}), countries=frozenset({actors[0]}))
    assert both.accepts_event(event)
    wrong_type = EventFilter(types=frozenset({"diplomacy.event.coded"}), countries=both.countries)
    assert not wrong_type.accepts_event(event)


def test_a_pair_chooses_the_events_of_its_relation() -> None:
    event = example_event("diplomacy.meeting.held")
    a, b = sorted(actors_of(event))[:2]
    assert EventFilter(pairs=frozenset({Pair.of(a, b)})).accepts_event(event)
    assert not EventFilter(pairs=frozenset({Pair.of("FRA", "DEU")})).accepts_event(event)


def test_pairs_and_people_ask_for_the_event_only_past_the_cheap_criteria() -> None:
    asked: list[str] = []
    event = example_event("diplomacy.envoy.appointed")

    def decoded() -> object:
        asked.append("event")
        return event

    by_person = EventFilter(types=frozenset({"diplomacy.meeting.held"}), people=frozenset({"x"}))
    assert not by_person.accepts(event.type, actors_of(event), decoded)  # type: ignore[arg-type]
    assert asked == []
    assert EventFilter(people=frozenset({"li-hui"})).accepts(event.type, (), lambda: event)
    with pytest.raises(ValueError, match="needs the event"):
        EventFilter(people=frozenset({"li-hui"})).accepts(event.type, ())
