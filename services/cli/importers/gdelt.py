"""GDELT 2.0 event export rows -> Chancery events. Pure: a row's fields in, an outcome out.

The export is tab-separated, 61 columns, no header, no quoting (columns: `COLUMNS`, from
GDELT's own schema file, `GDELT_2.0_Events_Column_Labels_Header_Row_Sep2016.csv`). GDELT
1.0 files have 57 or 58 columns and a different layout: `check_layout` refuses them.

A row becomes a `diplomacy.event.coded`:
- id: GLOBALEVENTID; source: `SOURCE`, the same for every GDELT row;
- actor1/actor2: the actor's CAMEO country code, else its known-group code, else its full
  CAMEO code, through `actor_from_cameo` (ISO alpha-3 for states; NAT, UNO, EEC, ... for the
  organisations of the registry). Regions (AFR), bare roles (GOV) and ethnic or religious
  groups name no state: the row is skipped;
- cameo: EventCode as written (a string, leading zeros kept); goldstein: GoldsteinScale;
- occurred: SQLDATE, at day precision; time (when it was reported): DATEADDED, in UTC;
- source_url: SOURCEURL when it is an http(s) URL (GDELT also writes citations there);
- mentions: NumMentions.

Codes 040, 041, 044 and 046 also give a `diplomacy.meeting.held` between the two sides. It
has no place: GDELT's ActionGeo is where the article placed the story (a Russia-Syria
consultation read off a US talk show is "in" the USA), not reliably where the meeting was.
GDELT does not say which actors are people (Actor1Name is as often "MARYLAND" or "REUTERS" as
"ANGELA MERKEL"), so no row becomes a trip: a 042/043 visit stays a coded event, which the
relation already counts as a visit contact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType

from chancery.contract import When, actor_from_cameo
from chancery.contract.cameo import is_known

from .events import (
    Mapped,
    Outcome,
    RowError,
    check_reported,
    coded_event,
    meeting_event,
    optional_float,
    optional_int,
    parse_day,
    row_id,
    url_or_none,
)
from .reading import LayoutError

SOURCE = "https://www.gdeltproject.org/"
"""The CloudEvents `source` of every event imported from GDELT."""

COLUMNS: tuple[str, ...] = (
    "GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate",
    "Actor1Code", "Actor1Name", "Actor1CountryCode", "Actor1KnownGroupCode",
    "Actor1EthnicCode", "Actor1Religion1Code", "Actor1Religion2Code",
    "Actor1Type1Code", "Actor1Type2Code", "Actor1Type3Code",
    "Actor2Code", "Actor2Name", "Actor2CountryCode", "Actor2KnownGroupCode",
    "Actor2EthnicCode", "Actor2Religion1Code", "Actor2Religion2Code",
    "Actor2Type1Code", "Actor2Type2Code", "Actor2Type3Code",
    "IsRootEvent", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass",
    "GoldsteinScale", "NumMentions", "NumSources", "NumArticles", "AvgTone",
    "Actor1Geo_Type", "Actor1Geo_FullName", "Actor1Geo_CountryCode", "Actor1Geo_ADM1Code",
    "Actor1Geo_ADM2Code", "Actor1Geo_Lat", "Actor1Geo_Long", "Actor1Geo_FeatureID",
    "Actor2Geo_Type", "Actor2Geo_FullName", "Actor2Geo_CountryCode", "Actor2Geo_ADM1Code",
    "Actor2Geo_ADM2Code", "Actor2Geo_Lat", "Actor2Geo_Long", "Actor2Geo_FeatureID",
    "ActionGeo_Type", "ActionGeo_FullName", "ActionGeo_CountryCode", "ActionGeo_ADM1Code",
    "ActionGeo_ADM2Code", "ActionGeo_Lat", "ActionGeo_Long", "ActionGeo_FeatureID",
    "DATEADDED", "SOURCEURL",
)  # fmt: skip
WIDTH = len(COLUMNS)
GDELT1_WIDTHS = frozenset({57, 58})
_AT: Mapping[str, int] = MappingProxyType({name: i for i, name in enumerate(COLUMNS)})


def check_layout(first: Sequence[str], *, name: str) -> bool:
    """Check the first line of a file. True if it is a header line (to be skipped)."""
    width = len(first)
    if width in GDELT1_WIDTHS:
        raise LayoutError(
            f"{name}: {width} columns: this is a GDELT 1.0 events file; "
            f"`chancery import gdelt` takes GDELT 2.0 export files ({WIDTH} columns)"
        )
    if width != WIDTH:
        raise LayoutError(
            f"{name}: {width} column(s) on the first line: not a GDELT 2.0 export file "
            f"({WIDTH} tab-separated columns)"
        )
    return tuple(first) == COLUMNS


def map_row(fields: Sequence[str]) -> Outcome:
    """One export row (its 61 fields) -> its events, or why it is skipped."""
    try:
        return _map(fields)
    except RowError as exc:
        return exc.skipped


def _map(fields: Sequence[str]) -> Outcome:
    if len(fields) != WIDTH:
        raise RowError("malformed", f"{len(fields)} columns, expected {WIDTH}")

    def col(name: str) -> str:
        return fields[_AT[name]].strip()

    event_id = row_id(col("GLOBALEVENTID"), "GLOBALEVENTID")
    sides = [
        (col(f"Actor{n}CountryCode"), col(f"Actor{n}KnownGroupCode"), col(f"Actor{n}Code"))
        for n in (1, 2)
    ]
    for n, codes in enumerate(sides, 1):
        if not any(codes):
            raise RowError("one_sided", f"no actor {n}")
    actor1, actor2 = (_actor(codes, n) for n, codes in enumerate(sides, 1))
    if actor1 == actor2:
        raise RowError("same_actor", f"{actor1} on both sides")
    code = col("EventCode")
    if not is_known(code):
        raise RowError("unknown_cameo", f"EventCode {code[:10]!r} is not a CAMEO code")
    goldstein = optional_float(col("GoldsteinScale"), "GoldsteinScale")
    mentions = optional_int(col("NumMentions"), "NumMentions")
    day = parse_day(col("SQLDATE"), "%Y%m%d", "SQLDATE")
    added = col("DATEADDED")
    try:
        reported = datetime.strptime(added, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise RowError("bad_date", f"DATEADDED {added[:20]!r} is not a date and time") from None
    occurred = When.of_day(day)
    check_reported(occurred, reported, "DATEADDED")

    coded = coded_event(
        source=SOURCE,
        id=event_id,
        reported=reported,
        actor1=actor1,
        actor2=actor2,
        cameo=code,
        goldstein=goldstein,
        occurred=occurred,
        source_url=url_or_none(col("SOURCEURL")),
        mentions=mentions,
    )
    meeting = meeting_event(
        source=SOURCE,
        reported=reported,
        code=code,
        actor1=actor1,
        actor2=actor2,
        occurred=occurred,
    )
    return Mapped(coded, (meeting,) if meeting else ())


def _actor(codes: tuple[str, str, str], side: int) -> str:
    """The first of (country code, known-group code, actor code) that names an actor."""
    for candidate in codes:
        actor = actor_from_cameo(candidate) if candidate else None
        if actor is not None:
            return actor
    country, group, code = codes
    shown = code or country or group
    raise RowError("no_actor", f"actor {side} {shown[:20]!r} names no state or known organisation")
