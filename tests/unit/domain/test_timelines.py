"""Timelines: which pair and country timelines an event belongs to, and where on them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from chancery.contract import Event
from chancery.domain import (
    Pair,
    country_timeline,
    on_country_timeline,
    order_key,
    pair_timeline,
    timeline_refs,
    timeline_sort_key,
)
from tests.unit.contract.strategies import histories

from .builders import BLINKEN, event, incident, meeting, retraction, trip_event

pytestmark = pytest.mark.unit


def test_a_mediated_meeting_is_on_the_timelines_of_all_three() -> None:
    refs = timeline_refs(meeting("m", "2023-03", "IRN", "SAU", mediator="CHN"))
    assert refs.countries == ("CHN", "IRN", "SAU")
    assert [str(p) for p in refs.pairs] == ["CHN|IRN", "CHN|SAU", "IRN|SAU"]


def test_an_incident_is_on_the_timelines_of_where_it_happened_but_pairs_only_its_parties() -> None:
    balloon = event(
        "incident.occurred",
        "balloon",
        {
            "occurred": "2023-02",
            "parties": ["CHN", "USA"],
            "summary": "a balloon",
            "locations": ["USA", "CAN"],
        },
    )
    refs = timeline_refs(balloon)
    assert refs.countries == ("CAN", "CHN", "USA")
    assert [str(p) for p in refs.pairs] == ["CHN|USA"]


def test_a_trip_is_on_the_travellers_and_destinations_timelines() -> None:
    postponed = trip_event(
        "postponed", "p", "2023-02", trip="beijing", traveller=BLINKEN, legs=[{"country": "CHN"}]
    )
    refs = timeline_refs(postponed)
    assert (refs.countries, [str(p) for p in refs.pairs]) == (("CHN", "USA"), ["CHN|USA"])


def test_an_appointment_has_a_country_timeline_and_no_pair() -> None:
    appointed = event(
        "envoy.appointed",
        "e",
        {
            "occurred": "2023-05-12",
            "person": {"id": "li-hui", "name": "Li Hui", "country": "CHN"},
            "appointed_by": "CHN",
            "role": "envoy",
        },
    )
    assert (timeline_refs(appointed).countries, timeline_refs(appointed).pairs) == (("CHN",), ())


def test_a_late_event_lands_where_it_belongs_on_the_timeline() -> None:
    march = meeting("march", "2023-03", "CHN", "USA")
    may = meeting("may", "2023-05-10", "CHN", "USA")
    late = incident("late", "2023-02-04", "CHN", "USA")  # occurred first, arrives last
    gone = meeting("gone", "2023-04", "CHN", "USA")
    events = [march, may, gone, retraction("r", gone), late]
    assert pair_timeline(Pair.of("CHN", "USA"), events) == [late, march, may]
    assert country_timeline("USA", events) == [late, march, may]
    assert country_timeline("IRN", events) == []


@settings(max_examples=50, deadline=None)
@given(histories(max_size=10))
def test_the_timeline_sort_key_is_the_fold_order_as_a_string(events: list[Event]) -> None:
    by_key = sorted(events, key=order_key)
    by_string = sorted(events, key=timeline_sort_key)
    assert by_key == by_string


@settings(max_examples=100, deadline=None)
@given(histories(max_size=10))
def test_an_actors_timeline_is_its_pairs_timelines_and_its_solo_events(
    events: list[Event],
) -> None:
    """What the read models keep (pair timelines and solo events) gives every actor's
    timeline: each actor of an event is in one of the event's pairs or solo, never both."""
    for e in events:
        refs = timeline_refs(e)
        paired = {actor for pair in refs.pairs for actor in (pair.first, pair.second)}
        assert paired <= set(refs.countries)
        assert set(refs.solo) == set(refs.countries) - paired
        for actor in {*refs.countries, "ZZZ"}:
            assert on_country_timeline(actor, refs) == (actor in refs.countries)
    for actor in {a for e in events for a in timeline_refs(e).countries}:
        assert pair_timeline_union(actor, events) == country_timeline(actor, events)


def pair_timeline_union(actor: str, events: list[Event]) -> list[Event]:
    """The actor's pairs' timelines merged, without repeats, and its solo events."""
    pairs = {p for e in events for p in timeline_refs(e).pairs if actor in (p.first, p.second)}
    merged = {e.key: e for pair in pairs for e in pair_timeline(pair, events)}
    merged.update(
        {e.key: e for e in country_timeline(actor, events) if actor in timeline_refs(e).solo}
    )
    return sorted(merged.values(), key=order_key)


def test_a_mediator_of_a_change_of_relations_is_solo() -> None:
    refs = timeline_refs(
        event(
            "relations.changed",
            "r",
            {"parties": ["IRN", "SAU"], "change": "restored", "occurred": "2023-03-10",
             "mediator": "CHN"},
        )
    )  # fmt: skip
    assert refs.solo == ("CHN",)
