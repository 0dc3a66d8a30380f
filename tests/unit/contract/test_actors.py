"""Actors: ISO states, the IGO registry, people, and the importers' mappings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from chancery.contract import (
    CAMEO_IGOS,
    IGOS,
    ActorCode,
    CountryCode,
    Person,
    actor_from_cameo,
    country_from_name,
    is_country,
    slugify,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"


class _Country(BaseModel):
    code: CountryCode


class _Actor(BaseModel):
    code: ActorCode


@pytest.mark.parametrize("given", ["CHN", "chn", "Chn"])
def test_a_country_code_is_accepted_in_any_case_and_written_upper(given: str) -> None:
    assert _Country(code=given).code == "CHN"
    assert _Country(code=given).model_dump_json() == '{"code":"CHN"}'


@pytest.mark.parametrize("given", ["XXX", "SU", "USSR", "ROM", "", "NATO", 840])
def test_anything_but_a_current_alpha_3_code_is_not_a_country(given: object) -> None:
    with pytest.raises(ValidationError) as caught:
        _Country.model_validate({"code": given})
    assert caught.value.errors()[0]["loc"] == ("code",)


def test_an_actor_is_a_state_or_a_registry_organisation() -> None:
    assert _Actor(code="nato").code == "NATO"
    assert _Actor(code="usa").code == "USA"
    with pytest.raises(ValidationError) as caught:
        _Actor(code="NAT")  # CAMEO's code, not the registry's
    assert caught.value.errors()[0]["type"] == "unknown_actor"


@pytest.mark.parametrize("given", ["usa", "USA", "xxx", "NAT"])
def test_an_actor_from_json_answers_the_same_every_time(given: str) -> None:
    """Valid codes are remembered once checked; an invalid one is refused every time."""
    answers = []
    for _ in range(3):
        try:
            answers.append(_Actor.model_validate_json(f'{{"code":"{given}"}}').code)
        except ValidationError as exc:
            answers.append(exc.errors(include_url=False)[0]["type"])
    assert len(set(answers)) == 1
    assert answers[0] in ("USA", "unknown_actor")


def test_no_organisation_code_can_be_mistaken_for_a_state() -> None:
    assert not [code for code in IGOS if is_country(code)]


def test_cameo_codes_for_organisations_map_onto_the_registry() -> None:
    assert CAMEO_IGOS["NAT"] == "NATO"
    assert CAMEO_IGOS["UNO"] == "UN"
    assert CAMEO_IGOS["EUR"] == "EU"
    assert CAMEO_IGOS["EEC"] == "EU"
    assert set(CAMEO_IGOS.values()) <= set(IGOS)


@pytest.mark.parametrize(
    ("code", "actor"),
    [
        ("USA", "USA"),
        ("USAGOV", "USA"),
        ("RUSMIL", "RUS"),
        ("NAT", "NATO"),
        ("UNO", "UN"),
        ("IGOUNOKID", "UN"),
        ("IGOAFRAFU", "AU"),
        ("EUR", "EU"),
        ("ROM", "ROU"),  # CAMEO's old code for Romania
        ("AFR", None),  # a region
        ("GOV", None),  # a role with no country
        ("chn", None),  # an ethnic code (the Chinook), not China
        ("TAL", None),  # a known group that is not an organisation of the registry
        ("", None),
    ],
)
def test_actor_from_cameo(code: str, actor: str | None) -> None:
    assert actor_from_cameo(code) == actor


def test_every_country_code_of_the_real_gdelt_batch_maps_except_regions() -> None:
    codes = (FIXTURES / "gdelt_country_codes.txt").read_text().split()
    unmapped = [code for code in codes if actor_from_cameo(code) is None]
    assert unmapped == ["AFR", "SAF", "SEA"]  # Africa, Southern Africa, Southeast Asia


def test_known_groups_of_the_real_gdelt_batch() -> None:
    groups = (FIXTURES / "gdelt_known_groups.txt").read_text().split()
    assert {g: actor_from_cameo(g) for g in groups} == {
        "ASN": "ASEAN",
        "EEC": "EU",
        "SAD": "SADC",
        "TAL": None,
        "UNO": "UN",
    }


def test_every_country_name_of_the_real_icews_sample_is_known() -> None:
    names = (FIXTURES / "icews_country_names.txt").read_text().splitlines()
    assert len(names) == 151
    assert [name for name in names if country_from_name(name) is None] == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Russian Federation", "RUS"),
        ("Iran", "IRN"),
        ("Turkey", "TUR"),
        ("Côte d\u2019Ivoire", "CIV"),
        ("the former Yugoslav Republic of Macedonia", "MKD"),
        ("Moldova, Republic of", "MDA"),
        ("  united   states ", "USA"),
        ("Kosovo", None),
        ("Europe", None),
        ("", None),
    ],
)
def test_country_from_name(name: str, code: str | None) -> None:
    assert country_from_name(name) == code


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Li Hui", "li-hui"),
        ("Antony Blinken", "antony-blinken"),
        ("Pedro Sánchez", "pedro-sanchez"),
        ("Jean-Yves Le Drian", "jean-yves-le-drian"),
        ("  Wang   Yi ", "wang-yi"),
        ("李辉", ""),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_a_person_id_is_the_slug_of_the_name() -> None:
    person = Person(id="li-hui", name="Li Hui", country="chn", role="special representative")
    assert (person.id, person.country, person.actor) == ("li-hui", "CHN", "CHN")
    assert Person(id="li-hui-2", name="Li Hui", country="CHN").id == "li-hui-2"
    assert Person(id="li-hui", name="李辉", country="CHN").id == "li-hui"  # no ASCII slug to check
    with pytest.raises(ValidationError) as caught:
        Person(id="blinken", name="Antony Blinken", country="USA")
    assert caught.value.errors()[0]["loc"] == ("id",)
    with pytest.raises(ValidationError) as caught:
        Person(id="Li-Hui", name="Li Hui", country="CHN")
    assert caught.value.errors()[0]["loc"] == ("id",)


def test_a_person_acting_for_an_organisation_acts_for_it() -> None:
    person = Person(
        id="jens-stoltenberg", name="Jens Stoltenberg", country="NOR", organisation="nato"
    )
    assert person.actor == "NATO"
    with pytest.raises(ValidationError) as caught:
        Person(id="jens-stoltenberg", name="Jens Stoltenberg", country="NOR", organisation="NOR")
    assert caught.value.errors()[0]["loc"] == ("organisation",)
