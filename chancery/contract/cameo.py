"""CAMEO: the event code table Chancery ships, and the code each event type defaults to.

The table (`data/cameo_gdelt.tsv`, provenance in `data/README.md`) is GDELT's: 311 codes,
each with its name, GDELT Goldstein value and quad class. Codes are strings: `"042"` and
`"42"` are different things, and only the first exists.

Every event type has a default code (`DEFAULT_CAMEO`), refined for a few types by a field
that says more (a statement's kind, a relation change, a meeting's mode). A single event may
override the code, the Goldstein value, or both (`cameo` / `goldstein` in its data). The
defaults follow CAMEO's own coding rules where it has one: a visit is 042 "Make a visit", an
announced future meeting 036, a postponed or cancelled visit 161 "Reduce or break diplomatic
relations".
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from .plain_rules import Plain

QuadClass = Literal[1, 2, 3, 4]
QUAD_CLASS_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "verbal cooperation",
        2: "material cooperation",
        3: "verbal conflict",
        4: "material conflict",
    }
)


@dataclass(frozen=True)
class CameoEntry:
    code: str
    name: str
    goldstein: float
    quad_class: QuadClass

    @property
    def goldstein_tenths(self) -> int:
        return round(self.goldstein * 10)


def _quad(value: str) -> QuadClass:
    quad = int(value)
    if quad == 1:
        return 1
    if quad == 2:
        return 2
    if quad == 3:
        return 3
    if quad == 4:
        return 4
    raise ValueError(f"quad class '{value}'")


@cache
def table() -> Mapping[str, CameoEntry]:
    """Every CAMEO code, keyed by its string code."""
    text = (files("chancery.contract") / "data" / "cameo_gdelt.tsv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    return MappingProxyType(
        {
            row["code"]: CameoEntry(
                code=row["code"],
                name=row["name"],
                goldstein=float(row["goldstein"]),
                quad_class=_quad(row["quad_class"]),
            )
            for row in rows
        }
    )


def is_known(code: str) -> bool:
    return code in table()


def lookup(code: str) -> CameoEntry:
    """The table's entry for `code`; KeyError if CAMEO has no such code."""
    return table()[code]


@lru_cache(maxsize=1024)  # valid codes only (an error is raised, not kept): at most 311
def _check_code(code: str) -> str:
    if not is_known(code):
        raise PydanticCustomError(
            "unknown_cameo", "'{code}' is not a CAMEO event code", {"code": code}
        )
    return code


CameoCode = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{2,4}$"),
    AfterValidator(_check_code),
    Plain(values=table),
]
"""A CAMEO event code of the table, as a string with its leading zeros."""


def _one_decimal(value: float) -> float:
    tenths = value * 10
    if abs(tenths - round(tenths)) > 1e-6:
        raise PydanticCustomError(
            "goldstein_precision",
            "a Goldstein value has at most one decimal, like the scale itself; got {value}",
            {"value": value},
        )
    return round(value, 1)


@lru_cache(maxsize=1024)  # the twin calls it per event; Goldstein values are a few hundred
def _in_tenths(value: float) -> bool:
    """What `_one_decimal` lets through unchanged."""
    return round(value, 1) == value


Goldstein = Annotated[
    float, Field(ge=-10.0, le=10.0), AfterValidator(_one_decimal), Plain(check=_in_tenths)
]
"""A Goldstein value: -10 (conflict) to +10 (cooperation), in tenths."""


DEFAULT_CAMEO: Mapping[str, str] = MappingProxyType(
    {
        "diplomacy.envoy.appointed": "010",  # Make statement: a unilateral announcement
        "diplomacy.visit.announced": "036",  # Express intent to meet or negotiate
        "diplomacy.visit.leg.started": "042",  # Make a visit
        "diplomacy.visit.leg.completed": "042",  # Make a visit
        "diplomacy.visit.postponed": "161",  # Reduce or break diplomatic relations
        "diplomacy.visit.rescheduled": "036",  # Express intent to meet or negotiate
        "diplomacy.visit.cancelled": "161",  # Reduce or break diplomatic relations
        "diplomacy.visit.completed": "042",  # Make a visit
        "diplomacy.meeting.held": "040",  # Consult
        "diplomacy.relations.changed": "050",  # Engage in diplomatic cooperation
        "diplomacy.partnership.declared": "050",  # Engage in diplomatic cooperation
        "diplomacy.stance.declared": "010",  # Make statement
        "diplomacy.statement.made": "010",  # Make statement
        "diplomacy.proposal.made": "027",  # Appeal to others to settle dispute
        "diplomacy.proposal.rejected": "127",  # Reject plan, agreement to settle dispute
        "diplomacy.incident.occurred": "170",  # Coerce
    }
)
"""The code of each type when the event says nothing more. `event.coded` carries its own code
and `event.retracted` has none (it is a correction, not an interaction)."""

STATEMENT_KIND_CAMEO: Mapping[str, str] = MappingProxyType(
    {
        "accuse": "112",  # Accuse
        "blame": "112",  # Accuse
        "criticise": "111",  # Criticize or denounce
        "praise": "051",  # Praise or endorse
        "appeal": "020",  # Appeal
        "comment": "010",  # Make statement
    }
)

RELATION_CHANGE_CAMEO: Mapping[str, str] = MappingProxyType(
    {
        "established": "054",  # Grant diplomatic recognition
        "restored": "050",  # Engage in diplomatic cooperation
        "upgraded": "050",  # Engage in diplomatic cooperation
        "downgraded": "161",  # Reduce or break diplomatic relations
        "suspended": "161",
        "severed": "161",
    }
)

MEETING_MODE_CAMEO: Mapping[str, str] = MappingProxyType(
    {
        "in_person": "040",  # Consult
        "phone": "041",  # Discuss by telephone
        "video": "040",  # Consult
    }
)

CONTACT_ROOT = "04"
"""CAMEO's CONSULT family (040-046): a coded event with one of these codes is a contact."""
