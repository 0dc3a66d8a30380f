"""GDELT 2.0 rows -> events: the real export batch, row by row, and every skip reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from chancery.contract import EventCoded, MeetingHeld, encode_event
from services.cli.importers import gdelt
from services.cli.importers.datasets import Gdelt, LayoutError
from services.cli.importers.events import Mapped, Skipped
from services.cli.importers.reading import TabFile

from .reference import GDELT1, GDELT2, Mapping, extract

pytestmark = pytest.mark.unit


def _row(mapping: Mapping, row_id: str) -> list[str]:
    for line, _ in mapping.rows:
        if line.fields[0] == row_id:
            return list(line.fields)
    raise KeyError(row_id)


def _set(fields: list[str], **values: str) -> list[str]:
    changed = list(fields)
    for name, value in values.items():
        changed[gdelt.COLUMNS.index(name)] = value
    return changed


def test_the_reference_batch_maps_to_exact_counts(gdelt_rows: Mapping) -> None:
    assert len(gdelt_rows.rows) == 2111
    assert gdelt_rows.outcomes == Counter(
        {"mapped": 453, "no_actor": 832, "one_sided": 705, "same_actor": 121}
    )
    events = list(gdelt_rows.events())
    assert Counter(e.type for e in events) == Counter(
        {"diplomacy.event.coded": 453, "diplomacy.meeting.held": 58}
    )
    distinct = {(e.type, e.id) for e in events}
    assert Counter(kind for kind, _ in distinct) == Counter(
        {"diplomacy.event.coded": 453, "diplomacy.meeting.held": 15}
    )


def test_a_consultation_row_becomes_a_coded_event_and_a_meeting(gdelt_rows: Mapping) -> None:
    outcome = gdelt_rows.by_id("881990890")  # USA 040 CHN, reported 2019-10-24 14:30
    assert isinstance(outcome, Mapped)
    coded = outcome.coded
    assert coded.id == "881990890"
    assert coded.source == "https://www.gdeltproject.org/"
    assert coded.time.isoformat() == "2019-10-24T14:30:00+00:00"
    data = coded.data
    assert (data.actor1, data.actor2, data.cameo, data.goldstein) == ("USA", "CHN", "040", 1.0)
    assert str(data.occurred) == "2019-10-23"
    assert data.mentions == 10
    assert data.source_url is not None
    assert data.source_url.startswith("https://www.dailyforex.com/")
    (meeting,) = outcome.derived
    assert isinstance(meeting, MeetingHeld)
    assert meeting.data.parties == ("CHN", "USA")
    assert meeting.data.mode == "in_person"
    assert meeting.data.cameo == "040"
    assert meeting.data.participants == ()
    assert meeting.data.country is None  # GDELT's ActionGeo is not where a meeting was
    assert meeting.id.startswith("meeting.2019-10-23.CHN-USA.")
    assert meeting.data.derived  # counted once: by the coded event


def test_codes_are_strings_with_their_leading_zeros(gdelt_rows: Mapping) -> None:
    codes = {e.data.cameo for e in gdelt_rows.events() if isinstance(e, EventCoded)}
    assert "042" in codes
    assert "043" in codes
    assert all(len(code) >= 3 for code in codes)


def test_organisations_come_from_the_cameo_group_codes() -> None:
    fields = [""] * gdelt.WIDTH
    fields = _set(
        fields,
        GLOBALEVENTID="1",
        SQLDATE="20191024",
        Actor1Code="IGOEUREEC",
        Actor1CountryCode="EUR",
        Actor1KnownGroupCode="EEC",
        Actor2Code="IGOUNO",
        Actor2KnownGroupCode="UNO",
        EventCode="040",
        GoldsteinScale="1.0",
        DATEADDED="20191024143000",
        SOURCEURL="BBC Monitoring",
    )
    outcome = gdelt.map_row(fields)
    assert isinstance(outcome, Mapped)
    assert (outcome.coded.data.actor1, outcome.coded.data.actor2) == ("EU", "UN")
    assert outcome.coded.data.source_url is None  # a citation, not a URL


def test_both_directions_of_one_consultation_derive_one_meeting(gdelt_rows: Mapping) -> None:
    row = _row(gdelt_rows, "881990890")
    reverse = _set(
        row,
        GLOBALEVENTID="999",
        Actor1Code=row[gdelt.COLUMNS.index("Actor2Code")],
        Actor1CountryCode=row[gdelt.COLUMNS.index("Actor2CountryCode")],
        Actor2Code=row[gdelt.COLUMNS.index("Actor1Code")],
        Actor2CountryCode=row[gdelt.COLUMNS.index("Actor1CountryCode")],
        NumMentions="1",
    )
    one, two = gdelt.map_row(row), gdelt.map_row(reverse)
    assert isinstance(one, Mapped)
    assert isinstance(two, Mapped)
    assert one.coded.id != two.coded.id
    # One fact, one event: whichever row sends it, ingest sees the same id and content.
    first, second = one.derived[0], two.derived[0]
    assert isinstance(first, MeetingHeld)
    assert isinstance(second, MeetingHeld)
    assert encode_event(first) == encode_event(second)


def test_mapping_again_gives_the_same_bytes(gdelt_rows: Mapping) -> None:
    again = Mapping()
    with TabFile(GDELT2) as file:
        again.rows = list(Gdelt().rows(file.lines(), "again"))
    first = [encode_event(e) for e in gdelt_rows.events()]
    assert first == [encode_event(e) for e in again.events()]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Actor2Code": "", "Actor2CountryCode": "", "Actor2KnownGroupCode": ""}, "one_sided"),
        ({"Actor2Code": "AFR", "Actor2CountryCode": "AFR"}, "no_actor"),
        ({"Actor2Code": "GOV", "Actor2CountryCode": ""}, "no_actor"),
        ({"Actor2Code": "USAGOV", "Actor2CountryCode": "USA"}, "same_actor"),
        ({"EventCode": "999"}, "unknown_cameo"),
        ({"EventCode": "40"}, "unknown_cameo"),
        ({"SQLDATE": "20191332"}, "bad_date"),
        ({"SQLDATE": "20191027"}, "bad_date"),  # after DATEADDED + 1 day
        ({"DATEADDED": "2019"}, "bad_date"),
        ({"GLOBALEVENTID": "x1"}, "malformed"),
        ({"NumMentions": "many"}, "malformed"),
        ({"GoldsteinScale": "12.0"}, "invalid"),
    ],
)
def test_rows_that_cannot_be_mapped_say_why(
    gdelt_rows: Mapping, change: dict[str, str], reason: str
) -> None:
    outcome = gdelt.map_row(_set(_row(gdelt_rows, "881990890"), **change))
    assert isinstance(outcome, Skipped)
    assert outcome.reason == reason
    assert outcome.detail


def test_a_row_with_the_wrong_number_of_columns_is_malformed(gdelt_rows: Mapping) -> None:
    outcome = gdelt.map_row(_row(gdelt_rows, "881990890")[:60])
    assert outcome == Skipped("malformed", "60 columns, expected 61")


def test_gdelt_1_files_are_refused_naming_the_file_and_its_columns(tmp_path: Path) -> None:
    plain = extract(GDELT1, tmp_path)
    with pytest.raises(LayoutError, match=r"gdelt1_events.*: 58 columns: this is a GDELT 1.0"):
        Gdelt().check(plain)
    with pytest.raises(LayoutError, match="57 columns"):
        gdelt.check_layout(["x"] * 57, name="f")
    with pytest.raises(LayoutError, match="20 column"):
        gdelt.check_layout(["x"] * 20, name="f")


def test_a_header_line_is_not_a_row(gdelt_rows: Mapping, tmp_path: Path) -> None:
    path = tmp_path / "with-header.tsv"
    body = "\t".join(gdelt.COLUMNS) + "\n" + "\t".join(_row(gdelt_rows, "881990890")) + "\n"
    path.write_text(body)
    with TabFile(path) as file:
        rows = list(Gdelt().rows(file.lines(), str(path)))
    assert len(rows) == 1
    assert isinstance(rows[0][1], Mapped)
