"""The article's facts, written as events, fold into what a reader of the article expects.

The article (Friday 12 May 2023) on China's envoy Li Hui: seeds/article.jsonl, with the
sentence behind each event in seeds/README.md.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from chancery.contract import Event, When, parse_incoming
from chancery.domain import Pair, fold_itinerary, fold_relation, pair_timeline

pytestmark = pytest.mark.unit

SEEDS = Path(__file__).resolve().parents[3] / "seeds"
PUBLISHED = date(2023, 5, 12)


@pytest.fixture(scope="module")
def lines() -> list[dict[str, object]]:
    text = (SEEDS / "article.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def events(lines: list[dict[str, object]]) -> list[Event]:
    return [parse_incoming(line) for line in lines]  # the front door's validation


def test_the_seeds_are_client_events_with_stable_identities(
    lines: list[dict[str, object]], events: list[Event]
) -> None:
    assert len(events) == len(lines) >= 15
    assert {e.source for e in events} == {
        "https://chancery.example/seeds/article-li-hui-2023-05-12"
    }
    assert len({e.id for e in events}) == len(events)
    assert not any("recordedtime" in line or "partitionkey" in line for line in lines)


def test_each_seed_quotes_its_sentence_in_the_readme(events: list[Event]) -> None:
    readme = (SEEDS / "README.md").read_text(encoding="utf-8")
    assert [e.id for e in events if f"`{e.id}`" not in readme] == []


def test_china_and_russia_have_a_no_limits_partnership(events: list[Event]) -> None:
    state = fold_relation(Pair.of("CHN", "RUS"), events, today=PUBLISHED)
    assert state.partnership is not None
    assert state.partnership.label == "no limits"
    # and Li Hui's announced visit is their next contact
    assert state.next_contact is not None
    assert (state.next_contact.when, state.next_contact.kind) == (When("2023-W20"), "visit")


@pytest.mark.parametrize("today", [PUBLISHED, date(2026, 1, 1)])
def test_china_and_the_us_are_strained_with_the_vienna_talks_as_last_contact(
    events: list[Event], today: date
) -> None:
    state = fold_relation(Pair.of("USA", "CHN"), events, today=today)
    assert state.climate == "strained"
    assert state.score < -1
    assert state.last_contact is not None
    assert (state.last_contact.when, state.last_contact.kind) == (
        When("2023-05-10/2023-05-11"),
        "meeting",
    )
    assert state.last_contact.event.id == "wang-yi-sullivan-vienna-talks"
    assert state.next_contact is None  # Blinken's visit has no new date
    assert state.quad_counts["4"] == 2  # the balloon and the postponed visit


def test_relations_worsened_in_february_with_the_balloon(events: list[Event]) -> None:
    pair = Pair.of("CHN", "USA")
    timeline = pair_timeline(pair, events)
    # both "in February": at month precision neither comes first, so identity orders them
    assert {e.id for e in timeline[:2]} == {
        "spy-balloon-shot-down",
        "blinken-beijing-visit-postponed",
    }
    january = fold_relation(pair, events, today=PUBLISHED, as_of=date(2023, 1, 31))
    assert january.event_count == 0


def test_iran_and_saudi_arabia_restored_relations_in_march_mediated_by_china(
    events: list[Event],
) -> None:
    state = fold_relation(Pair.of("IRN", "SAU"), events, today=PUBLISHED)
    assert state.status == "full"
    assert state.status_since == When("2023-03")  # the article says "in March", no day
    assert state.mediator == "CHN"
    assert [ref.id for ref in state.status_event_ids] == ["iran-saudi-relations-restored"]
    as_of_february = fold_relation(
        Pair.of("IRN", "SAU"), events, today=PUBLISHED, as_of=date(2023, 2, 28)
    )
    assert as_of_february.status == "unknown"


def test_li_hui_trip_is_announced_for_the_week_of_15_may_to_five_countries(
    events: list[Event],
) -> None:
    itinerary = fold_itinerary("li-hui", events)
    (trip,) = itinerary.trips
    assert trip.status == "announced"
    assert trip.planned == When("2023-W20")
    assert trip.planned.start.date() == date(2023, 5, 15)
    assert [leg.country for leg in trip.legs] == ["RUS", "UKR", "FRA", "DEU", "POL"]
    assert {leg.status for leg in trip.legs} == {"planned"}
    assert itinerary.person is not None
    assert itinerary.person.role == "special representative for Eurasian affairs"


def test_blinkens_trip_to_beijing_is_postponed_with_no_new_date(events: list[Event]) -> None:
    (trip,) = fold_itinerary("antony-blinken", events).trips
    assert (trip.status, trip.planned) == ("postponed", None)
    (leg,) = trip.legs
    assert (leg.country, leg.city, leg.status, leg.planned) == ("CHN", "Beijing", "postponed", None)


def test_a_second_source_with_the_day_dates_the_restoration_10_march_2023(
    events: list[Event],
) -> None:
    """The article says "in March"; the joint statement of Beijing gives the day. With both,
    the day makes the month precise: "full since 10 March 2023, mediated by China"."""
    joint_statement = parse_incoming(
        {
            "specversion": "1.0",
            "id": "iran-saudi-china-joint-trilateral-statement",
            "source": "https://chancery.example/beijing-joint-statement-2023-03-10",
            "type": "diplomacy.relations.changed",
            "time": "2023-03-10T15:00:00Z",
            "data": {
                "occurred": "2023-03-10",
                "parties": ["IRN", "SAU"],
                "change": "restored",
                "mediator": "CHN",
            },
        }
    )
    state = fold_relation(Pair.of("IRN", "SAU"), [*events, joint_statement], today=PUBLISHED)
    assert state.status == "full"
    assert state.status_since == When("2023-03-10")
    assert state.mediator == "CHN"
    assert [ref.id for ref in state.status_event_ids] == [
        "iran-saudi-china-joint-trilateral-statement"
    ]
    before = fold_relation(
        Pair.of("IRN", "SAU"), [*events, joint_statement], today=PUBLISHED, as_of=date(2023, 3, 9)
    )
    assert before.status == "unknown"
