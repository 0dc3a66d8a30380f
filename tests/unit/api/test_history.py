"""Relations through time over the twin: a pair's score series and record, a country's
relations on a day; their examples, their time travel and their 422s."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.api import examples_history
from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.api.conftest import NOON, RECORDED, ApiFactory, article
from tests.unit.domain.builders import retraction

pytestmark = pytest.mark.unit

BEFORE_THE_SEEDS = "2023-05-12T08:59:00Z"


def _seed(event_id: str) -> Any:
    return next(e for e in article() if e.id == event_id)


@pytest.mark.parametrize(("name", "url"), list(examples_history.EXAMPLE_URLS.items()))
async def test_each_example_is_what_the_api_answers(api: ApiFactory, name: str, url: str) -> None:
    example: dict[str, Any] = getattr(examples_history, name)
    async with api() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.json() == example


# --- the score series -----------------------------------------------------------------------


async def test_the_series_ends_on_the_score_the_relation_reports(api: ApiFactory) -> None:
    async with api() as client:
        series = (await client.get("/v1/relations/USA/CHN/scores")).json()
        relation = (await client.get("/v1/relations/CHN/USA")).json()
    assert series["bucket"] == "week"
    assert series["start"] == "2023-02-01"  # the pair's first event: the balloon, February
    assert series["points"][0]["period"] == "2023-W05"
    assert series["points"][-1]["period"] == "2023-W19"
    assert series["points"][-1]["end"] == "2023-05-12"
    assert series["points"][-1]["score"] == relation["score"]
    assert series["points"][-1]["events_to_date"] == relation["event_count"]


async def test_the_series_honours_as_of_and_known_at(api: ApiFactory) -> None:
    async with api() as client:
        as_of = (await client.get("/v1/relations/IRN/SAU/scores?as_of=2023-02-28")).json()
        known = (
            await client.get(
                "/v1/relations/IRN/SAU/scores",
                params={"known_at": BEFORE_THE_SEEDS, "from": "2023-01-01", "bucket": "month"},
            )
        ).json()
        now = (await client.get("/v1/relations/IRN/SAU/scores?bucket=month")).json()
    assert as_of["end"] == "2023-02-28"
    assert [p["score"] for p in as_of["points"]] == [None]  # no event by then
    assert {p["score"] for p in known["points"]} == {None}
    assert known["end"] == "2023-05-12"
    assert [p["period"] for p in now["points"]] == ["2023-03", "2023-04", "2023-05"]
    assert now["points"][0]["events"] == 2
    assert now["points"][0]["climate"] == "cordial"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2023-06-01", "from"),
        ("from=2023-03-01&to=2023-02-01", "from"),
        ("from=1990-01-01", "from"),  # 1,741 weeks
        ("bucket=day", "bucket"),
        ("from=2023-02-30", "from"),
        ("as_of=yesterday", "as_of"),
    ],
)
async def test_a_series_that_cannot_be_drawn_is_a_422_naming_why(
    api: ApiFactory, query: str, field: str
) -> None:
    async with api() as client:
        response = await client.get(f"/v1/relations/CHN/USA/scores?{query}")
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


async def test_a_long_span_fits_in_months(api: ApiFactory) -> None:
    async with api() as client:
        response = await client.get("/v1/relations/CHN/USA/scores?from=1990-01-01&bucket=month")
    assert response.status_code == 200
    assert len(response.json()["points"]) == 12 * 33 + 5


# --- the record ------------------------------------------------------------------------------


def _retract(twin: InMemoryReadModelReader, event_id: str, minutes_after_noon: int) -> str:
    """Retract a seed event; returns when the retraction was recorded."""
    at = NOON + timedelta(minutes=minutes_after_noon)
    twin.append(
        retraction(f"{event_id}-retracted", _seed(event_id), time="2023-05-12T11:00:00+00:00"),
        recorded_at=at,
    )
    return at.isoformat().replace("+00:00", "Z")


async def test_a_retracted_event_stays_in_the_record_marked(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    recorded = _retract(twin, "spy-balloon-shot-down", -30)
    async with api() as client:
        record = (await client.get("/v1/relations/CHN/USA/record?order=asc")).json()
        timeline = (await client.get("/v1/relations/CHN/USA/timeline")).json()
    balloon = next(i for i in record["items"] if i["event"]["id"] == "spy-balloon-shot-down")
    assert balloon["retracted"] is True
    assert balloon["retraction"]["event"]["id"] == "spy-balloon-shot-down-retracted"
    assert balloon["retraction"]["recorded_at"] == recorded
    assert balloon["occurred"] == "2023-02"
    assert record["total"] == 4
    assert record["retracted"] == 1
    assert [i["retracted"] for i in record["items"]].count(True) == 1
    # the timeline, which shows what counts now, leaves it out
    assert "spy-balloon-shot-down" not in [i["event"]["id"] for i in timeline["items"]]


async def test_known_at_shows_the_record_as_it_then_stood(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    _retract(twin, "spy-balloon-shot-down", -30)
    before_retraction = (NOON - timedelta(minutes=31)).isoformat()
    async with api() as client:
        then = (
            await client.get("/v1/relations/CHN/USA/record", params={"known_at": before_retraction})
        ).json()
        nothing = (
            await client.get("/v1/relations/CHN/USA/record", params={"known_at": BEFORE_THE_SEEDS})
        ).json()
    balloon = next(i for i in then["items"] if i["event"]["id"] == "spy-balloon-shot-down")
    assert balloon["retracted"] is False
    assert balloon["retraction"] is None
    assert then["retracted"] == 0
    assert nothing["items"] == []
    assert nothing["total"] == 0


async def test_as_of_keeps_what_occurred_by_then_newest_first(api: ApiFactory) -> None:
    async with api() as client:
        record = (await client.get("/v1/relations/CHN/USA/record?as_of=2023-05-10")).json()
    assert record["order"] == "desc"
    assert [i["occurred"] for i in record["items"]] == [
        "2023-05-10/2023-05-11",
        "2023-02",
        "2023-02",
    ]


async def test_the_record_pages_with_its_own_cursor(api: ApiFactory) -> None:
    async with api() as client:
        first = (await client.get("/v1/relations/CHN/USA/record?limit=3")).json()
        second = (
            await client.get(
                "/v1/relations/CHN/USA/record", params={"limit": 3, "cursor": first["next_cursor"]}
            )
        ).json()
        everything = (await client.get("/v1/relations/CHN/USA/record")).json()
        foreign = await client.get(
            "/v1/relations/IRN/SAU/record", params={"cursor": first["next_cursor"]}
        )
    assert len(first["items"]) == 3
    assert second["next_cursor"] is None
    assert first["items"] + second["items"] == everything["items"]
    assert foreign.status_code == 422
    assert "another record" in foreign.json()["detail"]


# --- a country's relations on a day -----------------------------------------------------------


async def test_a_country_s_relations_travel_in_time(api: ApiFactory) -> None:
    async with api() as client:
        now = (await client.get("/v1/countries/irn/relations")).json()
        before = (await client.get("/v1/countries/IRN/relations?as_of=2023-02-28")).json()
        unknown = (
            await client.get("/v1/countries/IRN/relations", params={"known_at": BEFORE_THE_SEEDS})
        ).json()
    saudi = next(i for i in now["items"] if i["pair"] == "IRN|SAU")
    assert now["country"] == "IRN"
    assert now["as_of"] == "2023-05-12"
    assert saudi["status"] == "full"
    assert before["items"] == []
    assert before["as_of"] == "2023-02-28"
    assert unknown["items"] == []


async def test_china_s_relations_include_russia_s_no_limits(api: ApiFactory) -> None:
    async with api() as client:
        body = (await client.get("/v1/countries/CHN/relations?sort=event_count")).json()
        listed = (await client.get("/v1/relations?country=CHN&sort=event_count&limit=500")).json()
    russia = next(i for i in body["items"] if i["pair"] == "CHN|RUS")
    assert russia["partnership"]["label"] == "no limits"
    # now, it lists what /v1/relations?country= lists, in the same order
    assert body["items"] == listed["items"]


async def test_known_at_refolds_what_was_recorded(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    half = (RECORDED + timedelta(minutes=4)).isoformat()  # the first five seeds recorded
    async with api() as client:
        body = (await client.get("/v1/countries/CHN/relations", params={"known_at": half})).json()
    partners = {i["pair"] for i in body["items"]}
    assert "CHN|RUS" in partners  # the partnership, the fourth seed
    assert "CHN|USA" in partners  # blamed, the fifth
    assert "CHN|IRN" not in partners  # the mediation came tenth
    assert body["known_at"] is not None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/countries/XYZ/relations",
        "/v1/countries/CHN/relations?sort=name",
        "/v1/countries/CHN/relations?known_at=2023-05-12",
        "/v1/relations/CHN/XYZ/record",
        "/v1/relations/CHN/USA/record?limit=0",
    ],
)
async def test_bad_parameters_are_422(api: ApiFactory, path: str) -> None:
    async with api() as client:
        response = await client.get(path)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/relations/CHN/USA/scores",
        "/v1/relations/CHN/USA/record",
        "/v1/countries/CHN/relations",
    ],
)
async def test_each_needs_credentials(api: ApiFactory, path: str) -> None:
    async with api() as client:
        response = await client.get(path, headers={"Authorization": ""})
    assert response.status_code == 401
