"""Bad input: every invalid field gets an error that names it.

Each case breaks one field of a valid example (see `examples.py`) and expects an error whose
`loc` is that field, so ingest can tell the client exactly what to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from chancery.contract import EVENT_TYPES, parse_incoming

from .examples import example_dict

pytestmark = pytest.mark.unit

Raw = dict[str, Any]


def data(type_name: str, **fields: Any) -> Callable[[], Raw]:
    return lambda: example_dict(type_name, **fields)


def envelope(type_name: str, **fields: Any) -> Callable[[], Raw]:
    return lambda: example_dict(type_name) | fields


def nested(type_name: str, path: tuple[str | int, ...], value: Any) -> Callable[[], Raw]:
    def build() -> Raw:
        raw = example_dict(type_name)
        target: Any = raw["data"]
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return raw

    return build


def without(type_name: str, *path: str) -> Callable[[], Raw]:
    def build() -> Raw:
        raw = example_dict(type_name)
        target: Any = raw
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
        return raw

    return build


MEETING = "diplomacy.meeting.held"
ANNOUNCED = "diplomacy.visit.announced"
CODED = "diplomacy.event.coded"

CASES: list[tuple[str, Callable[[], Raw], tuple[str | int, ...], str]] = [
    # unknown country / actor
    ("unknown country", data(MEETING, country="XYZ"), ("data", "country"), "unknown_country"),
    (
        "unknown party",
        data(MEETING, parties=["CHN", "ZZZ"]),
        ("data", "parties", 1),
        "unknown_actor",
    ),
    (
        "unknown traveller country",
        nested(ANNOUNCED, ("traveller", "country"), "SUN"),
        ("data", "traveller", "country"),
        "unknown_country",
    ),
    (
        "unknown leg country",
        nested(ANNOUNCED, ("legs", 0, "country"), "RUX"),
        ("data", "legs", 0, "country"),
        "unknown_country",
    ),
    ("unknown coded actor", data(CODED, actor2="NAT"), ("data", "actor2"), "unknown_actor"),
    # time
    (
        "end before start",
        data(MEETING, occurred="2023-05-11/2023-05-10"),
        ("data", "occurred"),
        "when_end_before_start",
    ),
    ("not a date", data(MEETING, occurred="2023-02-30"), ("data", "occurred"), "when_invalid_date"),
    ("no precision", data(MEETING, occurred="recently"), ("data", "occurred"), "when_format"),
    (
        "occurred after it was reported",
        data(MEETING, occurred="2023-06"),
        ("data", "occurred"),
        "occurred_after_reported",
    ),
    ("time without offset", envelope(MEETING, time="2023-05-27T08:00:00"), ("time",), "rfc3339"),
    ("time as a number", envelope(MEETING, time=1684137600), ("time",), "rfc3339"),
    ("time as a day", envelope(MEETING, time="2023-05-27"), ("time",), "rfc3339"),
    # type and envelope
    ("unknown type", envelope(MEETING, type="diplomacy.summit.held"), ("type",), "unknown_type"),
    ("missing type", without(MEETING, "type"), ("type",), "unknown_type"),
    ("wrong specversion", envelope(MEETING, specversion="0.3"), ("specversion",), "literal_error"),
    (
        "bad content type",
        envelope(MEETING, datacontenttype="text/plain"),
        ("datacontenttype",),
        "literal_error",
    ),
    ("id with a space", envelope(MEETING, id="a b"), ("id",), "string_pattern_mismatch"),
    ("empty id", envelope(MEETING, id=""), ("id",), "string_too_short"),
    (
        "source with a space",
        envelope(MEETING, source="https://x.example/a b"),
        ("source",),
        "string_pattern_mismatch",
    ),
    ("missing time", without(MEETING, "time"), ("time",), "missing"),
    ("missing data field", without(MEETING, "data", "occurred"), ("data", "occurred"), "missing"),
    # extra fields
    ("extra attribute", envelope(MEETING, priority="high"), ("priority",), "extra_forbidden"),
    ("extra data field", data(MEETING, venue="Palais"), ("data", "venue"), "extra_forbidden"),
    (
        "extra person field",
        nested(ANNOUNCED, ("traveller", "nickname"), "Li"),
        ("data", "traveller", "nickname"),
        "extra_forbidden",
    ),
    ("extra coded field", data(CODED, tone=-2.5), ("data", "tone"), "extra_forbidden"),
    # a leg outside its trip
    (
        "leg after the trip",
        nested(ANNOUNCED, ("legs", 1, "planned"), "2023-05-25"),
        ("data", "legs", 1, "planned"),
        "leg_outside_trip",
    ),
    (
        "leg overlapping the trip's end",
        nested(ANNOUNCED, ("legs", 1, "planned"), "2023-05-21/2023-05-22"),
        ("data", "legs", 1, "planned"),
        "leg_outside_trip",
    ),
    (
        "rescheduled leg outside the new dates",
        nested("diplomacy.visit.rescheduled", ("legs", 1, "planned"), "2023-05-30"),
        ("data", "legs", 1, "planned"),
        "leg_outside_trip",
    ),
    (
        "two legs in one country",
        data(ANNOUNCED, legs=[{"country": "RUS"}, {"country": "rus"}]),
        ("data", "legs", 1),
        "duplicate",
    ),
    # strings that are too long
    ("too long id", envelope(MEETING, id="x" * 129), ("id",), "string_too_long"),
    (
        "too long source",
        envelope(MEETING, source="urn:" + "x" * 509),
        ("source",),
        "string_too_long",
    ),
    ("too long subject", envelope(MEETING, subject="s" * 257), ("subject",), "string_too_long"),
    (
        "too long purpose",
        data(ANNOUNCED, purpose="p" * 501),
        ("data", "purpose"),
        "string_too_long",
    ),
    ("too long city", data(MEETING, city="c" * 121), ("data", "city"), "string_too_long"),
    (
        "too long characterisation",
        data(MEETING, characterisations=["x" * 81]),
        ("data", "characterisations", 0),
        "string_too_long",
    ),
    (
        "too long name",
        nested(ANNOUNCED, ("traveller", "name"), "N" * 121),
        ("data", "traveller", "name"),
        "string_too_long",
    ),
    (
        "too long url",
        data(CODED, source_url="https://x.example/" + "u" * 2040),
        ("data", "source_url"),
        "string_too_long",
    ),
    (
        "too many parties",
        data(MEETING, parties=["CHN"] * 51, participants=[]),
        ("data", "parties"),
        "too_long",
    ),
    (
        "control character",
        data(MEETING, topic="line\nbreak"),
        ("data", "topic"),
        "string_pattern_mismatch",
    ),
    (
        "surrounding space",
        data(MEETING, city=" Vienna"),
        ("data", "city"),
        "string_pattern_mismatch",
    ),
    ("empty text", data(MEETING, topic=""), ("data", "topic"), "string_too_short"),
    # CAMEO
    ("unknown cameo override", data(MEETING, cameo="999"), ("data", "cameo"), "unknown_cameo"),
    ("cameo without its zero", data(CODED, cameo="42"), ("data", "cameo"), "unknown_cameo"),
    ("cameo as a number", data(CODED, cameo=42), ("data", "cameo"), "string_type"),
    (
        "goldstein off the scale",
        data(CODED, goldstein=10.5),
        ("data", "goldstein"),
        "less_than_equal",
    ),
    (
        "goldstein finer than tenths",
        data(CODED, goldstein=1.25),
        ("data", "goldstein"),
        "goldstein_precision",
    ),
    ("negative mentions", data(CODED, mentions=-1), ("data", "mentions"), "greater_than_equal"),
    (
        "not an http url",
        data(CODED, source_url="ftp://x.example/a"),
        ("data", "source_url"),
        "string_pattern_mismatch",
    ),
    # consistency inside one event
    (
        "a party twice",
        data(MEETING, parties=["CHN", "USA", "CHN"]),
        ("data", "parties", 2),
        "duplicate",
    ),
    ("mediator is a party", data(MEETING, mediator="USA"), ("data", "mediator"), "overlap"),
    (
        "participant of no party",
        data(MEETING, participants=[{"id": "li-hui", "name": "Li Hui", "country": "RUS"}]),
        ("data", "participants", 0, "country"),
        "participant_not_a_party",
    ),
    (
        "three parties to a relation",
        data("diplomacy.relations.changed", parties=["IRN", "SAU", "QAT"]),
        ("data", "parties"),
        "too_long",
    ),
    (
        "a relation with itself",
        data("diplomacy.relations.changed", parties=["IRN", "IRN"]),
        ("data", "parties", 1),
        "duplicate",
    ),
    (
        "unknown change",
        data("diplomacy.relations.changed", change="frozen"),
        ("data", "change"),
        "literal_error",
    ),
    (
        "speaker targets itself",
        data("diplomacy.statement.made", targets=["CHN"]),
        ("data", "by"),
        "overlap",
    ),
    (
        "rejected by nobody",
        data("diplomacy.proposal.rejected", by=[], by_description=None),
        ("data", "by"),
        "missing_rejecter",
    ),
    (
        "proposer rejects its own plan",
        data("diplomacy.proposal.rejected", by=["CHN"]),
        ("data", "by", 0),
        "overlap",
    ),
    (
        "dropped and planned",
        data("diplomacy.visit.rescheduled", dropped=["UKR"]),
        ("data", "dropped", 0),
        "overlap",
    ),
    (
        "person id not the slug of the name",
        nested("diplomacy.envoy.appointed", ("person", "id"), "hui-li"),
        ("data", "person", "id"),
        "person_id",
    ),
    (
        "person acting for a state as an organisation",
        nested("diplomacy.envoy.appointed", ("person", "organisation"), "RUS"),
        ("data", "person", "organisation"),
        "unknown_igo",
    ),
    (
        "a retraction of itself",
        data(
            "diplomacy.event.retracted",
            target={
                "source": "https://chancery.example/tests/golden",
                "id": "diplomacy.event.retracted-example",
            },
        ),
        ("data", "target"),
        "retracts_itself",
    ),
    (
        "a retraction naming no valid event",
        data("diplomacy.event.retracted", target={"source": "", "id": "x"}),
        ("data", "target", "source"),
        "string_too_short",
    ),
    (
        "a retraction with a date",
        data("diplomacy.event.retracted", occurred="2023-05-12"),
        ("data", "occurred"),
        "extra_forbidden",
    ),
    # the service's extensions
    (
        "client-set recordedtime",
        envelope(MEETING, recordedtime="2023-05-27T09:00:00Z"),
        ("recordedtime",),
        "extension_reserved",
    ),
    (
        "client-set partitionkey",
        envelope(MEETING, partitionkey="CHN|USA"),
        ("partitionkey",),
        "extension_reserved",
    ),
]


@pytest.mark.parametrize(
    ("build", "loc", "error_type"),
    [pytest.param(build, loc, error_type, id=name) for name, build, loc, error_type in CASES],
)
def test_an_invalid_field_gets_an_error_that_names_it(
    build: Callable[[], Raw], loc: tuple[str | int, ...], error_type: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_incoming(build())
    found = {(tuple(error["loc"]), error["type"]) for error in caught.value.errors()}
    assert (loc, error_type) in found, found
    assert all(error["msg"] for error in caught.value.errors())


def test_the_cases_cover_every_kind_of_bad_input_the_issue_names() -> None:
    kinds = {error_type for *_, error_type in CASES}
    assert {
        "unknown_country",
        "when_end_before_start",
        "unknown_type",
        "extra_forbidden",
        "leg_outside_trip",
        "string_too_long",
        "unknown_cameo",
    } <= kinds


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
def test_each_unbroken_example_is_valid_so_each_case_fails_for_its_own_reason(
    type_name: str,
) -> None:
    assert parse_incoming(example_dict(type_name)).type == type_name
