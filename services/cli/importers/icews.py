"""ICEWS coded event rows -> Chancery events. Pure: a row's fields in, an outcome out.

ICEWS `.tab` files are tab-separated with a header line of 20 columns; a missing value is
`NA`; countries are full English names ("Russian Federation", "Occupied Palestinian
Territory"). Columns are found by name, so their order does not matter.

A row becomes a `diplomacy.event.coded`:
- id: Event ID; source: `SOURCE` (the ICEWS Dataverse record), the same for every row;
- actor1/actor2: Source/Target Country through `country_from_name`. When the country is NA,
  the name may be an organisation ("European Union", "UN Security Council", "Ministry
  (European Union)"): `ORGANISATIONS` maps those to the registry; anything else (regions,
  "Unspecified Actor", companies, NGOs) is skipped;
- cameo: CAMEO Code as written; goldstein: Intensity (ICEWS's own Goldstein values);
- occurred: Event Date, at day precision; time (when it was reported): that day at 00:00 UTC,
  since ICEWS gives no publication time; no source_url and no mentions (ICEWS has neither).

What the code also says:
- 040, 041, 044, 046: a `diplomacy.meeting.held` between the two sides, with the named
  people among its participants and the row's City/Country as its place;
- 042 "Make a visit" (Source travels to Target) and 043 "Host a visit" (Target travels to
  Source): when the traveller is a named person (`looks_like_person`) of a state and the
  host is a state, a `diplomacy.visit.leg.started` of that person in the host country. Both
  rows of a 042/043 pair derive the same event (same content, same id).

ICEWS does not say which names are people. Names of the form "Sector (Country)" ("Foreign
Affairs (Bangladesh)", "Senate (United States)") are ICEWS's generic agents, and country
and organisation names are not people either; `looks_like_person` also refuses names with
organisation words. It is a heuristic: a person's trips are only as good as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time
from functools import cache
from types import MappingProxyType

from chancery.contract import (
    IGOS,
    Destination,
    Event,
    Person,
    When,
    country_from_name,
    is_country,
)
from chancery.contract.cameo import is_known

from .events import (
    VISIT_CODES,
    Mapped,
    Outcome,
    RowError,
    coded_event,
    meeting_event,
    name_or_none,
    optional_float,
    parse_day,
    person,
    row_id,
    visit_leg_event,
)
from .reading import LayoutError

SOURCE = "https://doi.org/10.7910/DVN/28075"
"""The CloudEvents `source` of every ICEWS event: the ICEWS Coded Event Data record."""

REQUIRED = (
    "Event ID",
    "Event Date",
    "Source Name",
    "Source Country",
    "CAMEO Code",
    "Intensity",
    "Target Name",
    "Target Country",
    "City",
    "Country",
)
"""The columns the mapping reads (ICEWS files have 20; the others are not needed)."""

NA = "NA"

ORGANISATIONS: Mapping[str, str] = MappingProxyType(
    {
        "european commission": "EU",
        "european parliament": "EU",
        "european council": "EU",
        "council of the european union": "EU",
        "un security council": "UN",
        "united nations security council": "UN",
        "un general assembly": "UN",
        "united nations general assembly": "UN",
        "arab league": "LAS",
        "organization for security and cooperation in europe": "OSCE",
        "organization of islamic cooperation": "OIC",
        "organization of the islamic conference": "OIC",
        "shanghai cooperation organization": "SCO",
        "group of seven": "G7",
        "group of eight": "G7",
        "g8": "G7",
        "group of twenty": "G20",
    }
)
"""ICEWS names of organisations of the registry beyond the registry's own names and codes."""

_AGENT = re.compile(r"^(?P<sector>[^()]+?)\s*\((?P<of>[^()]+)\)$")
_PARTICLES = frozenset(
    {"al", "ibn", "bin", "bint", "de", "del", "della", "der", "di", "da", "das", "do", "dos",
     "du", "el", "la", "le", "van", "von", "y", "zu"}
)  # fmt: skip
_NOT_A_PERSON = frozenset(
    {
        # organisations, places and offices
        "administered", "africa", "agency", "airlines", "airport", "airways", "alliance",
        "america", "americas", "army", "asia", "assembly", "association", "authority", "bank",
        "bloc", "board", "brigade", "brigades", "bureau", "cabinet", "caribbean", "center",
        "centre", "chamber", "church", "city", "club", "coalition", "college", "commission",
        "committee", "communist", "company", "conference", "congress", "corporation",
        "council", "county", "court", "crescent", "cross", "defence", "defense", "democratic",
        "department", "district", "east", "europe", "federation", "force", "forces",
        "foundation", "front", "fund", "global", "government", "group", "guard", "guards",
        "hospital", "house", "institute", "international", "island", "islands", "janata",
        "jihad", "kingdom", "league", "liberation", "militia", "ministry", "motors",
        "movement", "municipality", "national", "nations", "navy", "network", "office",
        "organisation", "organization", "organizations", "parliament", "parties", "party",
        "people's", "police", "province", "rada", "rebels", "red", "region", "republic",
        "school", "security", "senate", "sena", "service", "services", "socialist", "society",
        "state", "states", "territory", "tribunal", "trust", "union", "university", "west",
        "yard",
        # news outlets
        "arabiya", "channel", "daily", "gazette", "guardian", "herald", "independent",
        "jazeera", "journal", "news", "observer", "post", "press", "radio", "shimbun", "tass",
        "telegraph", "television", "times", "tribune", "xinhua",
        # titles (ICEWS writes "Deputy Prime Minister Suthep Thaugsuban")
        "deputy", "member", "minister", "president", "prime", "secretary", "spokesperson",
    }
)  # fmt: skip


def check_header(header: Sequence[str], *, name: str) -> dict[str, int]:
    """Column name -> index, from the header line; LayoutError if a needed column is missing."""
    index = {column.strip(): i for i, column in enumerate(header)}
    missing = [column for column in REQUIRED if column not in index]
    if missing:
        raise LayoutError(
            f"{name}: not an ICEWS events file: its first line ({len(header)} column(s)) is "
            f"not the ICEWS header; missing: {', '.join(missing)}"
        )
    return index


@cache
def _organisation_names() -> Mapping[str, str]:
    names = {igo.name.lower(): code for code, igo in IGOS.items()}
    names.update({code.lower(): code for code in IGOS})
    names.update(ORGANISATIONS)
    return MappingProxyType(names)


def organisation(name: str) -> str | None:
    """A registry organisation named by ICEWS ("European Union", "Ministry (G7)"), or None."""
    folded = " ".join(name.lower().split())
    found = _organisation_names().get(folded)
    if found is None and (agent := _AGENT.match(name.strip())):
        found = _organisation_names().get(" ".join(agent["of"].lower().split()))
    return found


def looks_like_person(name: str) -> bool:
    """True for what ICEWS writes for a named individual ("Wang Yi", "Kim Jong-Un").

    Refused: generic agents "Sector (Country)", country and organisation names, one-word
    names, names with digits or starting with "The", and names with a word that names an
    organisation, a news outlet or a title.
    """
    if name == NA or "(" in name or ")" in name or any(ch.isdigit() for ch in name):
        return False
    if country_from_name(name) is not None or organisation(name) is not None:
        return False
    words = name.split()
    if not 2 <= len(words) <= 6 or words[0].lower() == "the":
        return False
    for word in words:
        head = word.split("-")[0].lower()
        if not (word[0].isupper() or head in _PARTICLES):
            return False
        if word.lower().strip(".,'") in _NOT_A_PERSON:
            return False
    return True


class Side:
    """One side of a row: its name and the state or organisation it stands for."""

    __slots__ = ("actor", "name")

    def __init__(self, name: str, actor: str) -> None:
        self.name = name
        self.actor = actor

    def person(self) -> Person | None:
        """The named person on this side, if there is one and they act for a state."""
        if not is_country(self.actor) or not looks_like_person(self.name):
            return None
        return person(self.name, self.actor)


def map_row(fields: Sequence[str], columns: Mapping[str, int]) -> Outcome:
    """One data row (split on tabs) -> its events, or why it is skipped."""
    try:
        return _map(fields, columns)
    except RowError as exc:
        return exc.skipped


def _map(fields: Sequence[str], columns: Mapping[str, int]) -> Outcome:
    if len(fields) != len(columns):
        raise RowError("malformed", f"{len(fields)} columns, expected {len(columns)}")

    def col(name: str) -> str:
        return fields[columns[name]].strip()

    event_id = row_id(col("Event ID"), "Event ID")
    source = _side(col("Source Name"), col("Source Country"), "Source")
    target = _side(col("Target Name"), col("Target Country"), "Target")
    if source.actor == target.actor:
        raise RowError("same_actor", f"{source.actor} on both sides")
    code = col("CAMEO Code")
    if not is_known(code):
        raise RowError("unknown_cameo", f"CAMEO Code {code[:10]!r} is not a CAMEO code")
    goldstein = optional_float(col("Intensity"), "Intensity")
    day = parse_day(col("Event Date"), "%Y-%m-%d", "Event Date")
    reported = datetime.combine(day, time(0), tzinfo=UTC)
    occurred = When.of_day(day)

    coded = coded_event(
        source=SOURCE,
        id=event_id,
        reported=reported,
        actor1=source.actor,
        actor2=target.actor,
        cameo=code,
        goldstein=goldstein,
        occurred=occurred,
    )
    city = name_or_none(col("City"))
    place = country_from_name(col("Country")) if col("Country") != NA else None
    derived: list[Event] = []
    people = tuple(p for p in (source.person(), target.person()) if p is not None)
    meeting = meeting_event(
        source=SOURCE,
        reported=reported,
        code=code,
        actor1=source.actor,
        actor2=target.actor,
        occurred=occurred,
        participants=people,
        city=city if place else None,
        country=place,
    )
    if meeting is not None:
        derived.append(meeting)
    if code in VISIT_CODES:
        traveller, host = (
            (source, target)
            if VISIT_CODES[code] == "visitor_first"
            else (
                target,
                source,
            )
        )
        visitor = traveller.person()
        if visitor is not None and is_country(host.actor):
            where = Destination(country=host.actor, city=city if place == host.actor else None)
            leg = visit_leg_event(
                source=SOURCE, reported=reported, traveller=visitor, host=where, day=day
            )
            if leg is not None:
                derived.append(leg)
    return Mapped(coded, tuple(derived))


def _side(name: str, country: str, column: str) -> Side:
    if country == NA or not country:
        if name in {NA, ""}:
            raise RowError("one_sided", f"no {column.lower()}")
        igo = organisation(name)
        if igo is None:
            raise RowError(
                "no_actor", f"{column} {name[:40]!r} has no country and is not an organisation"
            )
        return Side(name, igo)
    code = country_from_name(country)
    if code is None:
        raise RowError("no_actor", f"{column} Country {country[:40]!r} is not a known country")
    return Side(name, code)
