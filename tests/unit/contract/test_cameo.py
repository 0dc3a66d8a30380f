"""The shipped CAMEO table, the defaults per type, and per-event overrides."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from chancery.contract import (
    DEFAULT_CAMEO,
    EVENT_TYPES,
    CameoCode,
    Goldstein,
    cameo,
    effective_cameo,
    effective_goldstein,
    quad_class,
)

from .examples import EXAMPLES, example_event

pytestmark = pytest.mark.unit


def test_the_table_has_every_gdelt_code_as_a_string_with_its_leading_zeros() -> None:
    table = cameo.table()
    assert len(table) == 311
    assert "042" in table
    assert "42" not in table
    assert "0841" in table
    assert all(code.isdigit() and 2 <= len(code) <= 4 for code in table)


@pytest.mark.parametrize(
    ("code", "goldstein", "quad"),
    [
        ("036", 4.0, 1),  # an announced meeting
        ("042", 1.9, 1),  # make a visit
        ("043", 2.8, 1),  # host a visit
        ("061", 6.4, 2),
        ("112", -2.0, 3),
        ("161", -4.0, 4),  # postponed or cancelled visits
        ("190", -10.0, 4),
        ("016", -2.0, 1),  # GDELT's value; ICEWS says -5
    ],
)
def test_goldstein_values_and_quad_classes_are_gdelts(
    code: str, goldstein: float, quad: int
) -> None:
    entry = cameo.lookup(code)
    assert (entry.goldstein, entry.quad_class) == (goldstein, quad)


def test_quad_class_follows_the_root_code() -> None:
    for code, entry in cameo.table().items():
        root = int(code[:2])
        expected = 1 if root <= 5 else 2 if root <= 9 else 3 if root <= 14 else 4
        assert entry.quad_class == expected, code


def test_the_misencoded_name_of_044_is_repaired() -> None:
    assert cameo.lookup("044").name == "Meet at a 'third' location"
    assert all(entry.name.isascii() for entry in cameo.table().values())


def test_every_type_but_coded_and_retracted_has_a_default_code_in_the_table() -> None:
    assert set(DEFAULT_CAMEO) == set(EVENT_TYPES) - {
        "diplomacy.event.coded",
        "diplomacy.event.retracted",
    }
    assert all(cameo.is_known(code) for code in DEFAULT_CAMEO.values())
    for refinement in (
        cameo.STATEMENT_KIND_CAMEO,
        cameo.RELATION_CHANGE_CAMEO,
        cameo.MEETING_MODE_CAMEO,
    ):
        assert all(cameo.is_known(code) for code in refinement.values())


class _Coded(BaseModel):
    code: CameoCode
    goldstein: Goldstein | None = None


@pytest.mark.parametrize("code", ["42", "999", "0420", "04a", ""])
def test_a_code_not_in_the_table_is_an_error_on_its_field(code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Coded(code=code)
    assert caught.value.errors()[0]["loc"] == ("code",)


@pytest.mark.parametrize("value", [10.5, -10.1, 1.25])
def test_a_goldstein_value_is_within_the_scale_in_tenths(value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        _Coded(code="042", goldstein=value)
    assert caught.value.errors()[0]["loc"] == ("goldstein",)
    assert _Coded(code="042", goldstein=-2.3).goldstein == -2.3


def _with(type_name: str, **data: Any) -> Any:
    return example_event(type_name, **data)


def test_an_event_counts_with_its_types_default_when_it_says_nothing_more() -> None:
    event = _with("diplomacy.visit.postponed")
    assert (effective_cameo(event), effective_goldstein(event), quad_class(event)) == (
        "161",
        -4.0,
        4,
    )


def test_fields_that_say_more_refine_the_default() -> None:
    assert effective_cameo(_with("diplomacy.statement.made", kind="praise")) == "051"
    assert effective_cameo(_with("diplomacy.statement.made", kind="blame")) == "112"
    assert effective_cameo(_with("diplomacy.relations.changed", change="severed")) == "161"
    assert effective_cameo(_with("diplomacy.meeting.held", mode="phone")) == "041"


def test_an_event_may_override_the_code_and_the_goldstein_value() -> None:
    event = _with("diplomacy.meeting.held", cameo="046")
    assert (effective_cameo(event), effective_goldstein(event), quad_class(event)) == (
        "046",
        7.0,
        1,
    )
    event = _with("diplomacy.meeting.held", goldstein=-1.5)
    assert (effective_cameo(event), effective_goldstein(event)) == ("040", -1.5)


def test_a_coded_event_carries_its_own_code_and_a_retraction_has_none() -> None:
    coded = _with("diplomacy.event.coded", cameo="0841", goldstein=None)
    assert (effective_cameo(coded), effective_goldstein(coded), quad_class(coded)) == (
        "0841",
        7.0,
        2,
    )
    retraction = example_event("diplomacy.event.retracted")
    assert (
        effective_cameo(retraction),
        effective_goldstein(retraction),
        quad_class(retraction),
    ) == (
        None,
        None,
        None,
    )


def test_every_example_but_the_retraction_has_a_code_in_the_table() -> None:
    for type_name in EXAMPLES:
        code = effective_cameo(example_event(type_name))
        if type_name == "diplomacy.event.retracted":
            assert code is None
        else:
            assert code is not None, type_name
            assert cameo.is_known(code), type_name
