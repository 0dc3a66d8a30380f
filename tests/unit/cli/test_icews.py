"""ICEWS rows -> events: the real sample, visit pairs, meetings with people, skip reasons."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from chancery.contract import MeetingHeld, VisitLegStarted, encode_event
from services.cli.importers import icews
from services.cli.importers.datasets import Icews, LayoutError
from services.cli.importers.events import Mapped, Skipped

from .reference import GDELT2, Mapping, extract

pytestmark = pytest.mark.unit

HEADER = [
    "Event ID",
    "Event Date",
    "Source Name",
    "Source Sectors",
    "Source Country",
    "Event Text",
    "CAMEO Code",
    "Intensity",
    "Target Name",
    "Target Sectors",
    "Target Country",
    "Story ID",
    "Sentence Number",
    "Publisher",
    "City",
    "District",
    "Province",
    "Country",
    "Latitude",
    "Longitude",
]
COLUMNS = icews.check_header(HEADER, name="header")


def _row(**values: str) -> list[str]:
    base = {
        "Event ID": "1",
        "Event Date": "2018-06-01",
        "Source Name": "China",
        "Source Sectors": "NA",
        "Source Country": "China",
        "Event Text": "Consult",
        "CAMEO Code": "040",
        "Intensity": "1",
        "Target Name": "United States",
        "Target Sectors": "NA",
        "Target Country": "United States",
        "City": "NA",
        "Country": "NA",
    }
    base.update(values)
    return [base.get(column, "NA") for column in HEADER]


def test_the_reference_sample_maps_to_exact_counts(icews_rows: Mapping) -> None:
    assert len(icews_rows.rows) == 3705
    assert icews_rows.outcomes == Counter({"mapped": 1932, "same_actor": 1598, "no_actor": 175})
    events = list(icews_rows.events())
    assert Counter(e.type for e in events) == Counter(
        {
            "diplomacy.event.coded": 1932,
            "diplomacy.meeting.held": 559,
            "diplomacy.visit.leg.started": 183,
        }
    )
    distinct = {(e.type, e.id) for e in events}
    assert Counter(kind for kind, _ in distinct) == Counter(
        {
            "diplomacy.event.coded": 1932,
            "diplomacy.meeting.held": 227,
            "diplomacy.visit.leg.started": 48,
        }
    )


def test_a_row_becomes_a_coded_event(icews_rows: Mapping) -> None:
    outcome = icews_rows.by_id("32889836")  # Foreign Affairs (Bangladesh) 040 ... (Vietnam)
    assert isinstance(outcome, Mapped)
    coded = outcome.coded
    assert coded.id == "32889836"
    assert coded.source == "https://doi.org/10.7910/DVN/28075"
    assert coded.time.isoformat() == "2018-06-01T00:00:00+00:00"
    data = coded.data
    assert (data.actor1, data.actor2, data.cameo, data.goldstein) == ("BGD", "VNM", "040", 1.0)
    assert str(data.occurred) == "2018-06-01"
    assert data.source_url is None
    assert data.mentions is None
    (meeting,) = outcome.derived
    assert isinstance(meeting, MeetingHeld)
    # Ministries are ICEWS's generic agents, not people: no participants.
    assert meeting.data.participants == ()
    assert (meeting.data.city, meeting.data.country) == ("Hanoi", "VNM")
    assert meeting.data.derived  # counted once: by the coded event


def test_both_rows_of_a_visit_pair_derive_the_same_leg(icews_rows: Mapping) -> None:
    visitor_row = icews_rows.by_id("32891818")  # Heiko Maas 042 Ukraine, in Mariupol
    host_row = icews_rows.by_id("32891833")  # Ukraine 043 Heiko Maas
    assert isinstance(visitor_row, Mapped)
    assert isinstance(host_row, Mapped)
    (leg,) = visitor_row.derived
    (other,) = host_row.derived
    assert isinstance(leg, VisitLegStarted)
    assert isinstance(other, VisitLegStarted)
    # One fact, one event: whichever row sends it, ingest sees the same id and content.
    assert encode_event(leg) == encode_event(other)
    assert leg.data.derived
    assert leg.data.traveller.id == "heiko-maas"
    assert leg.data.traveller.country == "DEU"
    assert (leg.data.country, leg.data.city) == ("UKR", "Mariupol")
    assert leg.data.trip_id == "heiko-maas-2018-06-01"
    assert leg.id.startswith("visit.2018-06-01.heiko-maas.UKR.")
    assert (visitor_row.coded.data.cameo, host_row.coded.data.cameo) == ("042", "043")


def test_a_ministry_that_travels_is_not_a_traveller(icews_rows: Mapping) -> None:
    outcome = icews_rows.by_id("32887036")  # Foreign Affairs (Russia) 042 South Korea
    assert isinstance(outcome, Mapped)
    assert outcome.derived == ()


def test_a_meeting_names_the_people_on_both_sides(icews_rows: Mapping) -> None:
    outcome = icews_rows.by_id("32891175")  # Kim Yong-chol 046 Mike Pompeo, New York City
    assert isinstance(outcome, Mapped)
    (meeting,) = outcome.derived
    assert isinstance(meeting, MeetingHeld)
    assert meeting.data.parties == ("PRK", "USA")
    assert meeting.data.cameo == "046"
    assert [(p.id, p.country) for p in meeting.data.participants] == [
        ("kim-yong-chol", "PRK"),
        ("mike-pompeo", "USA"),
    ]
    assert (meeting.data.city, meeting.data.country) == ("New York City", "USA")


def test_travellers_in_the_sample_are_people(icews_rows: Mapping) -> None:
    travellers = {
        e.data.traveller.name for e in icews_rows.events() if isinstance(e, VisitLegStarted)
    }
    assert {"Heiko Maas", "Wang Yi", "Kim Yong-chol", "Narendra Modi"} <= travellers
    assert len(travellers) == 30
    participants = {
        p.name
        for e in icews_rows.events()
        if isinstance(e, MeetingHeld)
        for p in e.data.participants
    }
    assert not participants & {"Al Jazeera", "Al Arabiya", "The Observer", "United Nations"}


@pytest.mark.parametrize(
    ("name", "person"),
    [
        ("Wang Yi", True),
        ("Kim Jong-Un", True),
        ("Salman bin Abdulaziz al-Saud", True),
        ("Ursula von der Leyen", True),
        ("Albert II", True),
        ("Foreign Affairs (Bangladesh)", False),
        ("Senate (United States)", False),
        ("United States", False),
        ("Russian Federation", False),
        ("European Union", False),
        ("Hamas", False),
        ("Bharatiya Janata Party", False),
        ("Al Jazeera", False),
        ("The Observer", False),
        ("Deputy Prime Minister Suthep Thaugsuban", False),
        ("International Committee of the Red Cross", False),
        ("G7", False),
        ("NA", False),
    ],
)
def test_who_counts_as_a_person(name: str, person: bool) -> None:
    assert icews.looks_like_person(name) is person


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("European Union", "EU"),
        ("European Commission", "EU"),
        ("Ministry (European Union)", "EU"),
        ("UN Security Council", "UN"),
        ("United Nations", "UN"),
        ("North Atlantic Treaty Organization", "NATO"),
        ("Association of Southeast Asian Nations", "ASEAN"),
        ("Secretariat (Organization of American States)", "OAS"),
        ("G7", "G7"),
        ("Africa", None),
        ("Unspecified Actor", None),
        ("International Committee of the Red Cross", None),
    ],
)
def test_organisations_without_a_country(name: str, code: str | None) -> None:
    assert icews.organisation(name) == code
    outcome = icews.map_row(_row(**{"Target Name": name, "Target Country": "NA"}), COLUMNS)
    if code is None:
        assert isinstance(outcome, Skipped)
        assert outcome.reason == "no_actor"
    else:
        assert isinstance(outcome, Mapped)
        assert outcome.coded.data.actor2 == code


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"Target Name": "NA", "Target Country": "NA"}, "one_sided"),
        ({"Target Country": "Atlantis"}, "no_actor"),
        ({"Target Name": "Citizen (China)", "Target Country": "China"}, "same_actor"),
        ({"CAMEO Code": "42"}, "unknown_cameo"),
        ({"CAMEO Code": "NA"}, "unknown_cameo"),
        ({"Event Date": "2018-02-30"}, "bad_date"),
        ({"Event Date": "NA"}, "bad_date"),
        ({"Event ID": "NA"}, "malformed"),
        ({"Intensity": "strong"}, "malformed"),
        ({"Intensity": "11"}, "invalid"),
    ],
)
def test_rows_that_cannot_be_mapped_say_why(values: dict[str, str], reason: str) -> None:
    outcome = icews.map_row(_row(**values), COLUMNS)
    assert isinstance(outcome, Skipped)
    assert outcome.reason == reason


def test_missing_intensity_leaves_the_goldstein_value_to_the_code() -> None:
    outcome = icews.map_row(_row(Intensity="NA"), COLUMNS)
    assert isinstance(outcome, Mapped)
    assert outcome.coded.data.goldstein is None


def test_a_file_without_the_icews_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"gdelt2_export.*not an ICEWS events file"):
        Icews().check(extract(GDELT2, tmp_path))
