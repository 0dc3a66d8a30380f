"""Itineraries, visits, people and events by id, through the routes."""

from __future__ import annotations

import pytest

from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.api.conftest import ApiFactory
from tests.unit.domain.builders import LI_HUI, coded, event, retraction, trip_event

pytestmark = pytest.mark.unit


async def test_an_itinerary_now_as_of_and_known_at(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    twin.append(trip_event("leg.started", "li-hui-in-kyiv", "2023-05-16", country="UKR",
                           trip="li-hui-ukraine-settlement-2023", traveller=LI_HUI))  # fmt: skip
    async with api() as client:
        now = (await client.get("/v1/itineraries/li-hui")).json()
        before = (await client.get("/v1/itineraries/li-hui?as_of=2023-05-15")).json()
        known = (await client.get("/v1/itineraries/li-hui?known_at=2023-05-12T11:00:00Z")).json()
        bad = await client.get("/v1/itineraries/Li_Hui")
    (trip,) = now["trips"]
    assert trip["status"] == "in_progress"
    assert {leg["country"]: leg["status"] for leg in trip["legs"]}["UKR"] == "in_progress"
    assert before["trips"][0]["status"] == "announced"
    assert known["trips"][0]["status"] == "announced"  # the leg was recorded at noon
    assert now["person"]["id"] == "li-hui"
    assert bad.status_code == 422


async def test_visits_filter_by_direction_status_and_window(api: ApiFactory) -> None:
    async with api() as client:
        everything = (await client.get("/v1/visits?country=CHN")).json()["items"]
        postponed = (await client.get("/v1/visits?country=CHN&status=postponed")).json()["items"]
        planned_page = (await client.get("/v1/visits?country=CHN&status=planned&limit=2")).json()
        rest = (
            await client.get(
                "/v1/visits",
                params={"country": "CHN", "status": "planned", "limit": 10,
                        "cursor": planned_page["next_cursor"]},
            )
        ).json()  # fmt: skip
        bad = await client.get("/v1/visits?country=CHN&status=delayed")
        wrong_cursor = await client.get(
            "/v1/visits", params={"country": "UKR", "cursor": planned_page["next_cursor"]}
        )
    assert len(everything) == 6  # Li Hui's five legs from China, Blinken's one to it
    assert [(v["traveller"]["id"], v["direction"]) for v in postponed] == [("antony-blinken", "to")]
    planned = planned_page["items"] + rest["items"]
    assert sorted(v["country"] for v in planned) == ["DEU", "FRA", "POL", "RUS", "UKR"]
    assert rest["next_cursor"] is None
    assert bad.status_code == 422
    assert wrong_cursor.status_code == 422


async def test_a_person_with_appointments_and_trips(api: ApiFactory) -> None:
    async with api() as client:
        li_hui = (await client.get("/v1/people/li-hui")).json()
        blinken = (await client.get("/v1/people/antony-blinken")).json()
        nobody = await client.get("/v1/people/nobody")
    assert li_hui["appointments"][0]["appointed_by"] == "CHN"
    assert li_hui["trips"][0]["planned"] == "2023-W20"
    assert blinken["appointments"] == []
    assert blinken["trips"][0]["status"] == "postponed"
    assert nobody.status_code == 404
    assert nobody.headers["content-type"] == "application/problem+json"


async def test_events_by_id_say_where_they_are_and_whether_they_count(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    consult = coded("consult", "2023-05-09", "FRA", "DEU", "040")
    twin.append(consult)
    twin.append(
        event(
            "event.coded",
            "consult",
            {"actor1": "FRA", "actor2": "ITA", "cameo": "040", "occurred": "2023-05-09"},
            source="urn:other",
        )
    )
    twin.append(retraction("consult-wrong", consult))
    async with api() as client:
        both = (await client.get("/v1/events/consult")).json()["matches"]
        one = (await client.get("/v1/events/consult", params={"source": "urn:other"})).json()[
            "matches"
        ]
        none = await client.get("/v1/events/consult", params={"source": "urn:third"})
        bad = await client.get("/v1/events/-bad id")
    assert sorted((m["event"]["source"], m["retracted"]) for m in both) == [
        ("https://wire.example/feed", True),
        ("urn:other", False),
    ]
    assert [m["event"]["data"]["actor2"] for m in one] == ["ITA"]
    assert none.status_code == 404
    assert bad.status_code == 422
