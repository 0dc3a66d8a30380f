"""Relations and timelines through the routes: codes, unknown pairs, as_of and known_at, ETags,
sorting and cursors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.api.conftest import RECORDED, ApiFactory
from tests.unit.domain.builders import meeting

pytestmark = pytest.mark.unit


async def test_pair_order_and_case_do_not_matter(api: ApiFactory) -> None:
    async with api() as client:
        one = await client.get("/v1/relations/CHN/USA")
        two = await client.get("/v1/relations/usa/chn")
    assert one.status_code == two.status_code == 200
    assert one.json() == two.json()
    assert one.headers["ETag"] == two.headers["ETag"]
    assert one.json()["pair"] == "CHN|USA"
    assert one.json()["last_contact"]["event"]["id"] == "wang-yi-sullivan-vienna-talks"


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/v1/relations/CHN/XYZ", "'XYZ'"),
        ("/v1/relations/qq/USA", "'qq'"),
        ("/v1/relations/CHN/chn", "CHN twice"),
        ("/v1/relations?country=ZZZ", "'ZZZ'"),
        ("/v1/countries/ABCD/timeline", "'ABCD'"),
    ],
)
async def test_an_unknown_code_is_a_422_that_names_it(
    api: ApiFactory, path: str, named: str
) -> None:
    async with api() as client:
        response = await client.get(path)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert named in response.json()["detail"]


async def test_a_pair_with_no_events_is_explicitly_unknown(api: ApiFactory) -> None:
    async with api() as client:
        body = (await client.get("/v1/relations/BRA/ARG")).json()
    assert body["status"] == "unknown"
    assert body["event_count"] == 0
    assert body["quad_counts"] == {"1": 0, "2": 0, "3": 0, "4": 0}
    assert body["last_contact"] is None
    assert body["next_contact"] is None


async def test_as_of_reads_the_history_and_known_at_what_was_recorded(api: ApiFactory) -> None:
    async with api() as client:
        now = (await client.get("/v1/relations/IRN/SAU")).json()
        february = (await client.get("/v1/relations/IRN/SAU?as_of=2023-02-28")).json()
        before = (
            await client.get("/v1/relations/IRN/SAU", params={"known_at": RECORDED.isoformat()})
        ).json()
        naive = await client.get("/v1/relations/IRN/SAU?known_at=2023-05-12T10:00:00")
    assert (now["status"], now["status_since"], now["mediator"]) == ("full", "2023-03", "CHN")
    assert february["status"] == "unknown"
    assert february["as_of"] == "2023-02-28"
    assert before["event_count"] == 0  # at 09:00 only the first seed was recorded
    assert before["known_at"] is not None
    assert naive.status_code == 422  # a time without its offset is ambiguous


async def test_now_is_the_clocks_day(api: ApiFactory) -> None:
    async with api() as client:
        body = (await client.get("/v1/relations/CHN/RUS")).json()
    assert body["as_of"] == "2023-05-12"
    assert body["next_contact"]["when"] == "2023-W20"  # Li Hui's trip, the week after
    assert body["partnership"]["label"] == "no limits"


async def test_an_unchanged_answer_is_304_until_the_pair_changes(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    async with api() as client:
        first = await client.get("/v1/relations/CHN/USA")
        etag = first.headers["ETag"]
        assert etag.startswith('W/"')
        assert first.headers["Cache-Control"] == "private, no-cache"
        same = await client.get("/v1/relations/CHN/USA", headers={"If-None-Match": etag})
        assert same.status_code == 304
        assert same.content == b""
        assert same.headers["ETag"] == etag
        # another pair's event moves the position, not this representation
        twin.append(meeting("elsewhere", "2023-05-11", "FRA", "DEU"))
        moved = await client.get("/v1/relations/CHN/USA", headers={"If-None-Match": etag})
        assert moved.status_code == 304
        assert moved.headers["Chancery-Position"] != first.headers["Chancery-Position"]
        twin.append(meeting("more-talks", "2023-05-11", "CHN", "USA"))
        changed = await client.get("/v1/relations/CHN/USA", headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["ETag"] != etag
        listed = await client.get(
            "/v1/relations/CHN/USA", headers={"If-None-Match": f'"x", {etag}'}
        )
        assert listed.status_code == 200
        star = await client.get("/v1/relations/CHN/USA", headers={"If-None-Match": "*"})
        assert star.status_code == 304


async def page_through(client: httpx.AsyncClient, path: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("sort", ["score", "last_contact", "event_count"])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_a_countrys_relations_page_in_order_each_partner_once(
    api: ApiFactory, sort: str, order: str
) -> None:
    async with api() as client:
        whole = (
            await client.get(
                "/v1/relations", params={"country": "chn", "sort": sort, "order": order}
            )
        ).json()
        paged = await page_through(
            client, "/v1/relations", country="CHN", sort=sort, order=order, limit=2
        )
    assert [i["pair"] for i in paged] == [i["pair"] for i in whole["items"]]
    assert len({i["pair"] for i in paged}) == len(paged) >= 6
    assert all("CHN" in i["parties"] for i in paged)
    if sort == "event_count":
        counts = [i["event_count"] for i in paged]
        assert counts == sorted(counts, reverse=order == "desc")


async def test_a_cursor_is_checked(api: ApiFactory) -> None:
    async with api() as client:
        page = (await client.get("/v1/relations", params={"country": "CHN", "limit": 1})).json()
        cursor = page["next_cursor"]
        other_sort = await client.get(
            "/v1/relations", params={"country": "CHN", "sort": "event_count", "cursor": cursor}
        )
        garbage = await client.get("/v1/relations", params={"country": "CHN", "cursor": "!!"})
        timeline = await client.get("/v1/countries/CHN/timeline", params={"cursor": cursor})
        too_big = await client.get("/v1/relations", params={"country": "CHN", "limit": 501})
    assert other_sort.status_code == garbage.status_code == timeline.status_code == 422
    assert too_big.status_code == 422


async def test_a_timeline_pages_filters_and_reverses(api: ApiFactory) -> None:
    async with api() as client:
        whole = (await client.get("/v1/countries/CHN/timeline")).json()["items"]
        paged = await page_through(client, "/v1/countries/chn/timeline", limit=4)
        newest = await page_through(client, "/v1/countries/CHN/timeline", limit=5, order="desc")
        stances = (
            await client.get(
                "/v1/countries/CHN/timeline",
                params={"type": "stance.declared,diplomacy.proposal.made"},
            )
        ).json()["items"]
        window = (
            await client.get(
                "/v1/relations/CHN/USA/timeline", params={"from": "2023-05-10", "to": "2023-05-10"}
            )
        ).json()["items"]
        backwards = await client.get(
            "/v1/countries/CHN/timeline", params={"from": "2023-05-10", "to": "2023-05-01"}
        )
    ids = [i["event"]["id"] for i in whole]
    assert [i["event"]["id"] for i in paged] == ids
    assert [i["event"]["id"] for i in newest] == ids[::-1]
    assert {i["event"]["type"] for i in stances} == {
        "diplomacy.stance.declared",
        "diplomacy.proposal.made",
    }
    assert [i["event"]["id"] for i in window] == ["wang-yi-sullivan-vienna-talks"]
    assert backwards.status_code == 422
    assert all(not i["retracted"] for i in whole)
