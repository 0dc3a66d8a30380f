"""Trips and itineraries: given these visit events, then this trip."""

from __future__ import annotations

from datetime import date

import pytest

from chancery.contract import When
from chancery.domain import fold_itinerary, fold_trip

from .builders import BLINKEN, legs, recorded, retraction, trip_event

pytestmark = pytest.mark.unit

ANNOUNCED = trip_event(
    "announced",
    "announced",
    "2023-05-12",
    legs=[*legs("RUS", "UKR"), {"country": "POL", "planned": "2023-05-18"}],
    planned="2023-W20",
    purpose="help settle the Ukrainian crisis",
)


def statuses(trip_legs: object) -> dict[str, str]:
    return {leg.country: leg.status for leg in trip_legs}  # type: ignore[attr-defined]


def test_an_announced_trip_has_its_legs_planned_at_their_own_precision() -> None:
    trip = fold_trip([ANNOUNCED])
    assert (trip.trip_id, trip.traveller.id, trip.status) == (
        "li-hui-eurasia",
        "li-hui",
        "announced",
    )
    assert trip.planned == When("2023-W20")
    assert trip.purpose == "help settle the Ukrainian crisis"
    # a leg with no dates of its own is planned for the trip's dates
    assert [(leg.country, leg.planned) for leg in trip.legs] == [
        ("RUS", When("2023-W20")),
        ("UKR", When("2023-W20")),
        ("POL", When("2023-05-18")),
    ]
    assert statuses(trip.legs) == {"RUS": "planned", "UKR": "planned", "POL": "planned"}


def test_a_leg_started_that_arrives_before_its_announcement_folds_the_same() -> None:
    started = trip_event("leg.started", "started", "2023-05-16", country="UKR", city="Kyiv")
    trip = fold_trip([started, ANNOUNCED])
    assert trip == fold_trip([ANNOUNCED, started])
    assert trip.status == "in_progress"
    ukraine = next(leg for leg in trip.legs if leg.country == "UKR")
    assert (ukraine.status, ukraine.city, ukraine.started, ukraine.planned) == (
        "in_progress",
        "Kyiv",
        When("2023-05-16"),
        When("2023-W20"),
    )
    assert [change.type for change in trip.history] == [
        "diplomacy.visit.announced",
        "diplomacy.visit.leg.started",
    ]


def test_a_trip_postponed_without_a_new_date_has_no_dates() -> None:
    postponed = trip_event(
        "postponed",
        "postponed",
        "2023-02",
        trip="blinken-beijing",
        traveller=BLINKEN,
        legs=[{"country": "CHN", "city": "Beijing"}],
        reason="balloon",
    )
    trip = fold_trip([postponed])
    assert (trip.status, trip.planned) == ("postponed", None)
    (leg,) = trip.legs
    assert (leg.country, leg.city, leg.status, leg.planned) == ("CHN", "Beijing", "postponed", None)
    assert trip.history[0].detail == "balloon"


def test_a_postponed_trip_with_a_new_date_moves_its_legs() -> None:
    postponed = trip_event(
        "postponed", "p", "2023-05-14", legs=legs("RUS", "UKR"), planned="2023-06"
    )
    trip = fold_trip([ANNOUNCED, postponed])
    assert (trip.status, trip.planned) == ("postponed", When("2023-06"))
    assert statuses(trip.legs) == {"RUS": "postponed", "UKR": "postponed", "POL": "planned"}


def test_a_rescheduled_trip_has_new_dates_and_drops_legs() -> None:
    rescheduled = trip_event(
        "rescheduled",
        "r",
        "2023-05-14",
        legs=[{"country": "UKR", "planned": "2023-06-02"}],
        planned="2023-06",
        dropped=["RUS"],
    )
    trip = fold_trip([rescheduled, ANNOUNCED])
    assert (trip.status, trip.planned) == ("rescheduled", When("2023-06"))
    assert statuses(trip.legs) == {"RUS": "cancelled", "UKR": "planned", "POL": "planned"}
    assert next(leg for leg in trip.legs if leg.country == "UKR").planned == When("2023-06-02")


def test_a_completed_trip_completes_its_visited_legs_and_cancels_the_rest() -> None:
    events = [
        ANNOUNCED,
        trip_event("leg.started", "s1", "2023-05-16", country="UKR"),
        trip_event("leg.completed", "c1", "2023-05-17", country="UKR"),
        trip_event("leg.started", "s2", "2023-05-18", country="POL"),
        trip_event(
            "completed", "done", "2023-05-26", destinations=[{"country": "UKR"}, {"country": "POL"}]
        ),
    ]
    trip = fold_trip(reversed(events))
    assert trip.status == "completed"
    assert statuses(trip.legs) == {"RUS": "cancelled", "UKR": "completed", "POL": "completed"}
    ukraine = next(leg for leg in trip.legs if leg.country == "UKR")
    assert (ukraine.started, ukraine.completed) == (When("2023-05-16"), When("2023-05-17"))
    assert [change.status for change in trip.history] == [
        "announced",
        "in_progress",
        "in_progress",
        "in_progress",
        "completed",
    ]


def test_a_cancelled_trip_keeps_the_legs_already_completed() -> None:
    events = [
        ANNOUNCED,
        trip_event("leg.completed", "c1", "2023-05-17", country="UKR"),
        trip_event(
            "cancelled", "x", "2023-05-18", destinations=legs("RUS"), reason="no longer welcome"
        ),
    ]
    trip = fold_trip(events)
    assert trip.status == "cancelled"
    assert statuses(trip.legs) == {"RUS": "cancelled", "UKR": "completed", "POL": "cancelled"}
    assert trip.history[-1].detail == "no longer welcome"


def test_a_retracted_announcement_leaves_the_trip_as_the_other_events_say() -> None:
    started = trip_event("leg.started", "started", "2023-05-16", country="UKR")
    trip = fold_trip([ANNOUNCED, started, retraction("fix", ANNOUNCED)])
    assert trip == fold_trip([started])
    assert [leg.country for leg in trip.legs] == ["UKR"]


def test_fold_trip_needs_the_events_of_one_trip() -> None:
    other = trip_event("announced", "other", "2023-05-12", trip="another-trip", legs=legs("FRA"))
    with pytest.raises(ValueError, match="exactly one trip"):
        fold_trip([ANNOUNCED, other])
    with pytest.raises(ValueError, match="exactly one trip"):
        fold_trip([])
    with pytest.raises(ValueError, match="exactly one trip"):
        fold_trip([ANNOUNCED, retraction("fix", ANNOUNCED)])


def test_an_itinerary_lists_a_persons_trips_in_order() -> None:
    later_trip = trip_event("announced", "later", "2023-09-01", trip="asia", legs=legs("JPN"))
    blinken = trip_event(
        "postponed", "b", "2023-02", trip="beijing", traveller=BLINKEN, legs=legs("CHN")
    )
    itinerary = fold_itinerary("li-hui", [later_trip, blinken, ANNOUNCED])
    assert itinerary.person is not None
    assert itinerary.person.name == "Li Hui"
    assert [trip.trip_id for trip in itinerary.trips] == ["li-hui-eurasia", "asia"]
    assert fold_itinerary("li-hui", [ANNOUNCED, later_trip], as_of=date(2023, 6, 1)).trips == (
        fold_trip([ANNOUNCED]),
    )
    nobody = fold_itinerary("nobody", [ANNOUNCED])
    assert (nobody.person, nobody.trips) == (None, ())


def test_an_itinerary_known_at_a_time() -> None:
    announced = recorded(ANNOUNCED, "2023-05-12T10:00:00+00:00")
    postponed = recorded(
        trip_event("postponed", "p", "2023-05-14", legs=legs("RUS", "UKR", "POL")),
        "2023-05-14T10:00:00+00:00",
    )
    then = fold_itinerary("li-hui", [announced, postponed], known_at=announced.recordedtime)
    assert then.trips[0].status == "announced"
    now = fold_itinerary("li-hui", [announced, postponed], known_at=postponed.recordedtime)
    assert now.trips[0].status == "postponed"


def test_a_leg_is_known_by_its_start_else_its_plan_else_the_trips() -> None:
    started = trip_event("leg.started", "started", "2023-05-16", country="UKR", city="Kyiv")
    trip = fold_trip([ANNOUNCED, started])
    dates = {leg.country: trip.leg_date(leg) for leg in trip.legs}
    assert dates == {
        "RUS": When("2023-W20"),  # the trip's planned week
        "UKR": When("2023-05-16"),  # started, though planned for the week
        "POL": When("2023-05-18"),  # its own plan
    }
    # each leg is a visit to its destination and from the traveller's state
    visits = {(v.country, v.leg_country, v.direction, v.when) for v in trip.visits()}
    assert visits == {(country, country, "to", when) for country, when in dates.items()} | {
        ("CHN", country, "from", when) for country, when in dates.items()
    }


def test_a_trip_without_dates_is_known_by_when_it_was_first_heard_of() -> None:
    postponed = trip_event(
        "postponed",
        "postponed",
        "2023-02",
        trip="blinken-beijing",
        traveller=BLINKEN,
        legs=[{"country": "CHN", "city": "Beijing"}],
    )
    trip = fold_trip([postponed])
    (leg,) = trip.legs
    assert trip.leg_date(leg) == trip.history[0].when == When("2023-02")
