"""Who acts: states, international organisations, people.

- A state is its ISO 3166-1 alpha-3 code, checked against pycountry's list; any case is
  accepted on input and upper case is what every reader sees.
- An international organisation (IGO) is a code from the small registry below. CAMEO, and so
  GDELT and ICEWS, have their own three-letter codes for these; `actor_from_cameo` maps them.
- A person is `{id, name, country, role}`, where `id` is the lowercase slug of the name.

Importers get two helpers: `actor_from_cameo` (GDELT's CAMEO actor codes) and
`country_from_name` (ICEWS writes countries as full English names).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Annotated, Any

import pycountry
from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from .errors import field_error
from .plain_rules import Plain
from .text import Label, Name, Slug


@dataclass(frozen=True)
class Igo:
    """An international organisation Chancery knows, and its codes in CAMEO."""

    code: str
    name: str
    cameo: tuple[str, ...] = ()


IGOS: Mapping[str, Igo] = MappingProxyType(
    {
        igo.code: igo
        for igo in (
            Igo("NATO", "North Atlantic Treaty Organization", ("NAT",)),
            # CAMEO's code for the EU is EEC; GDELT also writes EUR ("Europe") for EU actors.
            Igo("EU", "European Union", ("EEC", "EUR")),
            Igo("UN", "United Nations", ("UNO",)),
            Igo("ASEAN", "Association of Southeast Asian Nations", ("ASN",)),
            # CAMEO's table still has the Organization of African Unity (OAU), the AU's
            # predecessor; GDELT writes the AU as AFU (IGOAFRAFU).
            Igo("AU", "African Union", ("OAU", "AFU")),
            Igo("LAS", "League of Arab States", ("ARL",)),
            Igo("GCC", "Gulf Cooperation Council", ("GCC",)),
            Igo("OSCE", "Organization for Security and Co-operation in Europe", ("SCE",)),
            Igo("COE", "Council of Europe", ("COE",)),
            Igo("CIS", "Commonwealth of Independent States", ("CIS",)),
            Igo("OAS", "Organization of American States", ("OAS",)),
            Igo("OIC", "Organisation of Islamic Cooperation", ("OIC",)),
            Igo("OPEC", "Organization of the Petroleum Exporting Countries", ("OPC",)),
            Igo("ECOWAS", "Economic Community of West African States", ("WAS",)),
            Igo("SADC", "Southern African Development Community", ("SAD",)),
            Igo("SAARC", "South Asian Association for Regional Cooperation", ("SAA",)),
            Igo("G7", "Group of Seven", ("GOS",)),
            Igo("G20", "Group of Twenty"),
            Igo("BRICS", "BRICS"),
            Igo("SCO", "Shanghai Cooperation Organisation"),
            Igo("CSTO", "Collective Security Treaty Organization"),
            Igo("IAEA", "International Atomic Energy Agency", ("IAE",)),
            Igo("ICC", "International Criminal Court", ("ICC",)),
            Igo("ICJ", "International Court of Justice", ("ICJ",)),
            Igo("IMF", "International Monetary Fund", ("IMF",)),
            Igo("WB", "World Bank", ("WBK",)),
            Igo("WHO", "World Health Organization", ("WHO",)),
            Igo("WTO", "World Trade Organization", ("WTO",)),
        )
    }
)

CAMEO_IGOS: Mapping[str, str] = MappingProxyType(
    {cameo: igo.code for igo in IGOS.values() for cameo in igo.cameo}
)
"""CAMEO known-group (and GDELT region) code -> registry code."""

# CAMEO country codes that are not (or no longer) ISO 3166-1 alpha-3.
_CAMEO_COUNTRIES: Mapping[str, str] = MappingProxyType(
    {"ROM": "ROU", "TMP": "TLS", "MTN": "MNE", "ZAR": "COD"}
)

_CAMEO_CODE = re.compile(r"^[A-Za-z0-9]{3}(?:[A-Za-z0-9]{3})*$")


@cache
def _alpha3() -> frozenset[str]:
    return frozenset(str(country.alpha_3) for country in pycountry.countries)


def is_country(code: str) -> bool:
    """True for a current ISO 3166-1 alpha-3 code (upper case)."""
    return code in _alpha3()


def is_igo(code: str) -> bool:
    return code in IGOS


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_3=code)
    if country is None:
        raise KeyError(code)
    return str(country.name)


def actor_name(code: str) -> str:
    """A display name for a state or IGO code."""
    return IGOS[code].name if code in IGOS else country_name(code)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class _Code:
    """A code checked by `check` after upper-casing: `BeforeValidator(_upper)`, str,
    `AfterValidator(check)`. JSON input is always a string, so there the two functions are
    one call (`check(value.upper())` after pydantic-core's str check); Python input keeps
    both steps, which also pass non-strings through to the str check unchanged."""

    def __init__(self, check: Callable[[str], str]) -> None:
        self.check = check

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        check = self.check

        # Codes repeat (a few hundred states and organisations): a valid one is checked once.
        # An invalid one raises, which the cache does not keep, so its error is always fresh.
        @lru_cache(maxsize=4096)
        def upper_then_check(value: str) -> str:
            return check(value.upper())

        return core_schema.json_or_python_schema(
            json_schema=core_schema.no_info_after_validator_function(
                upper_then_check, core_schema.str_schema()
            ),
            python_schema=core_schema.no_info_after_validator_function(
                check,
                core_schema.no_info_before_validator_function(_upper, core_schema.str_schema()),
            ),
        )


def _check_country(code: str) -> str:
    if not is_country(code):
        raise PydanticCustomError(
            "unknown_country", "'{code}' is not an ISO 3166-1 alpha-3 country code", {"code": code}
        )
    return code


def _check_igo(code: str) -> str:
    if not is_igo(code):
        raise PydanticCustomError(
            "unknown_igo",
            "'{code}' is not a known organisation ({known})",
            {"code": code, "known": ", ".join(sorted(IGOS))},
        )
    return code


def _check_actor(code: str) -> str:
    if not (is_country(code) or is_igo(code)):
        raise PydanticCustomError(
            "unknown_actor",
            "'{code}' is neither an ISO 3166-1 alpha-3 country code nor a known organisation "
            "({known})",
            {"code": code, "known": ", ".join(sorted(IGOS))},
        )
    return code


# The plain twin takes a code as written in upper case, which `_Code` keeps as it is.
CountryCode = Annotated[
    str,
    _Code(_check_country),
    Plain(values=_alpha3),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z]{3}$",
            "description": "ISO 3166-1 alpha-3 country code (any case in, upper case out)",
        }
    ),
]
"""A state: ISO 3166-1 alpha-3, upper case."""

ActorCode = Annotated[
    str,
    _Code(_check_actor),
    Plain(values=lambda: (*_alpha3(), *IGOS)),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z0-9]{2,6}$",
            "description": (
                "A state (ISO 3166-1 alpha-3) or an international organisation: "
                + ", ".join(sorted(IGOS))
            ),
        }
    ),
]
"""A state or an international organisation of the registry."""

IgoCode = Annotated[
    str,
    _Code(_check_igo),
    Plain(values=lambda: IGOS),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z0-9]{2,6}$",
            "description": "An international organisation: " + ", ".join(sorted(IGOS)),
        }
    ),
]
"""An international organisation of the registry."""


def slugify(name: str) -> str:
    """The lowercase ASCII slug of a name: "Antony Blinken" -> "antony-blinken".

    Accents are folded ("Sánchez" -> "sanchez"); a name in a script with no ASCII form
    (Chinese characters) gives an empty slug.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return "-".join(re.findall(r"[a-z0-9]+", folded.lower()))


class Person(BaseModel):
    """A person acting for a state, or for an organisation when `organisation` is set.

    `id` is the slug of `name`, optionally followed by `-<suffix>` to tell apart two people
    of the same name (`li-hui-2`). It is what itineraries and Redis keys use.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Slug
    name: Name
    country: CountryCode
    role: Label | None = None
    organisation: IgoCode | None = None

    @model_validator(mode="after")
    def _id_is_the_slug_of_the_name(self) -> Person:
        slug = slugify(self.name)
        if slug and self.id != slug and not self.id.startswith(slug + "-"):
            raise field_error(
                ("id",),
                "person_id",
                "the id must be the slug of the name ('{slug}'), optionally with a -suffix",
                self.id,
                slug=slug,
            )
        return self

    @property
    def actor(self) -> str:
        """Whom the person acts for: the organisation if any, else the country."""
        return self.organisation or self.country


def actor_from_cameo(code: str) -> str | None:
    """A CAMEO actor code (GDELT `Actor1Code`, `Actor1CountryCode`, ...) -> state or IGO.

    CAMEO codes are chains of three-letter groups: `USAGOV` is the US government, `IGOUNO`
    the UN as an IGO, `IGOAFRAFU` the African Union. The first group that names a state or a
    known organisation wins. Regions (`AFR`), roles alone (`GOV`) and lower-case groups
    (CAMEO's ethnic and religious codes: `chn` is the Chinook, not China) give None.
    """
    code = code.strip()
    if not _CAMEO_CODE.match(code):
        return None
    for i in range(0, len(code), 3):
        group = code[i : i + 3]
        if not group.isupper():
            return None
        if group in CAMEO_IGOS:
            return CAMEO_IGOS[group]
        group = _CAMEO_COUNTRIES.get(group, group)
        if is_country(group):
            return group
        if i == 0 and group != "IGO":
            return None
    return None


# Names used by ICEWS and in news that pycountry does not know (old names, short forms).
_COUNTRY_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "turkey": "TUR",
        "swaziland": "SWZ",
        "holy see": "VAT",
        "vatican": "VAT",
        "occupied palestinian territory": "PSE",
        "palestine": "PSE",
        "democratic republic of congo": "COD",
        "democratic republic of the congo": "COD",
        "dr congo": "COD",
        "republic of the congo": "COG",
        "the former yugoslav republic of macedonia": "MKD",
        "macedonia": "MKD",
        "ivory coast": "CIV",
        "burma": "MMR",
        "east timor": "TLS",
        "cape verde": "CPV",
        "czech republic": "CZE",
        "great britain": "GBR",
        "britain": "GBR",
        "uk": "GBR",
        "us": "USA",
        "usa": "USA",
        "united states of america": "USA",
        "russia": "RUS",
    }
)


def _fold(name: str) -> str:
    name = name.replace("\u2019", "'")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return " ".join(ascii_name.lower().split())


@cache
def _names_index() -> Mapping[str, str]:
    index: dict[str, str] = {}
    for country in pycountry.countries:
        for attribute in ("name", "official_name", "common_name"):
            value = getattr(country, attribute, None)
            if value:
                index[_fold(str(value))] = str(country.alpha_3)
    index.update(_COUNTRY_ALIASES)
    return MappingProxyType(index)


def country_from_name(name: str) -> str | None:
    """A country's English name (as ICEWS writes it) -> ISO alpha-3, or None if unknown."""
    folded = _fold(name)
    if not folded:
        return None
    found = _names_index().get(folded)
    if found is None and folded.startswith("the "):
        found = _names_index().get(folded[4:])
    return found
