"""What the Atlas reads, over the real stack: a pair's score series and record, a country's
relations on a day, and the session cookie on the JSON reads and the stream.

The article's events go through ingest, then an extra event and its retraction, so the
record has a retracted event and "known at" before the retraction differs from now.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from chancery.positions import Position
from services.api.sessions import COOKIE
from tests.e2e.conftest import Stack, seed_events
from tests.e2e.sse import messages

pytestmark = pytest.mark.e2e

EXTRA_SOURCE = "https://wire.example/e2e-atlas"


@dataclass(frozen=True)
class Loaded:
    position: str
    before_seeds: datetime
    before_retraction: datetime


def _coded(event_id: str, occurred: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": EXTRA_SOURCE,
        "type": "diplomacy.event.coded",
        "time": "2023-05-12T00:00:00Z",
        "data": {"actor1": "CHN", "actor2": "USA", "cameo": "111", "occurred": occurred},
    }


def _retraction(target: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{target}-retracted",
        "source": EXTRA_SOURCE,
        "type": "diplomacy.event.retracted",
        "time": "2023-05-13T00:00:00Z",
        "data": {"target": {"source": EXTRA_SOURCE, "id": target}, "reason": "misreported"},
    }


async def _instant() -> datetime:
    await asyncio.sleep(0.02)
    at = datetime.now(UTC)
    await asyncio.sleep(0.02)
    return at


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(stack: Stack) -> Loaded:
    before_seeds = await _instant()
    first = await stack.post([*seed_events(), _coded("chn-usa-criticism", "2023-04-03")])
    before_retraction = await _instant()
    second = await stack.post([_retraction("chn-usa-criticism")])
    position = Position.parse(first).merge(Position.parse(second))
    return Loaded(position.token(), before_seeds, before_retraction)


async def test_the_score_series_ends_on_the_relation_s_score(stack: Stack, loaded: Loaded) -> None:
    relation = await stack.get("/v1/relations/CHN/USA", min_position=loaded.position)
    series = await stack.get(
        "/v1/relations/CHN/USA/scores", min_position=loaded.position, bucket="month"
    )
    assert series["start"] == "2023-02-01"
    assert series["points"][-1]["score"] == relation["score"]
    assert series["points"][-1]["events_to_date"] == relation["event_count"]
    assert [p["events"] for p in series["points"][:4]] == [2, 0, 0, 2]  # April's was retracted


async def test_the_series_as_known_before_the_retraction_counts_it(
    stack: Stack, loaded: Loaded
) -> None:
    then = await stack.get(
        "/v1/relations/CHN/USA/scores",
        min_position=loaded.position,
        bucket="month",
        known_at=loaded.before_retraction.isoformat(),
    )
    april = next(p for p in then["points"] if p["period"] == "2023-04")
    assert april["events"] == 1


async def test_the_record_marks_the_retracted_event_and_known_at_unmarks_it(
    stack: Stack, loaded: Loaded
) -> None:
    now = await stack.get("/v1/relations/USA/CHN/record", min_position=loaded.position)
    then = await stack.get(
        "/v1/relations/USA/CHN/record",
        min_position=loaded.position,
        known_at=loaded.before_retraction.isoformat(),
    )
    nothing = await stack.get(
        "/v1/relations/USA/CHN/record",
        min_position=loaded.position,
        known_at=loaded.before_seeds.isoformat(),
    )

    def criticism(body: dict[str, Any]) -> dict[str, Any]:
        return next(i for i in body["items"] if i["event"]["id"] == "chn-usa-criticism")

    assert criticism(now)["retracted"] is True
    assert criticism(now)["retraction"]["reason"] == "misreported"
    assert now["retracted"] == 1
    assert criticism(then)["retracted"] is False
    assert then["retracted"] == 0
    assert now["total"] == then["total"] == 5
    assert nothing["items"] == []


async def test_a_country_s_relations_on_a_day_and_as_known(stack: Stack, loaded: Loaded) -> None:
    now = await stack.get("/v1/countries/IRN/relations", min_position=loaded.position)
    before = await stack.get(
        "/v1/countries/IRN/relations", min_position=loaded.position, as_of="2023-02-28"
    )
    unknown = await stack.get(
        "/v1/countries/IRN/relations",
        min_position=loaded.position,
        known_at=loaded.before_seeds.isoformat(),
    )
    china = await stack.get(
        "/v1/countries/CHN/relations", min_position=loaded.position, sort="event_count"
    )
    listed = await stack.get(
        "/v1/relations", min_position=loaded.position, country="CHN", sort="event_count", limit=500
    )
    assert next(i for i in now["items"] if i["pair"] == "IRN|SAU")["status"] == "full"
    assert before["items"] == []
    assert unknown["items"] == []
    assert next(i for i in china["items"] if i["pair"] == "CHN|RUS")["partnership"]["label"] == (
        "no limits"
    )
    assert china["items"] == listed["items"]


# --- the session cookie, on the real server -----------------------------------------------------


async def _cookie(stack: Stack) -> str:
    async with httpx.AsyncClient(base_url=stack.api_url) as browser:
        response = await browser.get("/", params={"token": stack.keys.read})
    assert response.status_code == 303
    assert "token" not in response.headers["location"]
    return response.headers["set-cookie"].split(";")[0].split("=", 1)[1]


async def test_the_cookie_reads_the_api_and_opens_the_stream(stack: Stack, loaded: Loaded) -> None:
    cookie = await _cookie(stack)
    jar = {"Cookie": f"{COOKIE}={cookie}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=jar, timeout=10) as browser:
        relation = await browser.get(
            "/v1/relations/IRN/SAU", params={"min_position": loaded.position}
        )
        assert relation.status_code == 200
        assert relation.json()["status"] == "full"
        async with browser.stream(
            "GET", "/v1/stream", params={"after": f"{stack.topic}@"}
        ) as stream:
            assert stream.status_code == 200
            async with asyncio.timeout(10):
                async for message in messages(stream):
                    if message.data:
                        assert message.id is not None
                        break
        elsewhere = await browser.get(
            "/v1/relations/IRN/SAU", headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert elsewhere.status_code == 401


async def test_without_the_cookie_the_stream_is_401(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as anonymous:
        response = await anonymous.get("/v1/stream")
    assert response.status_code == 401
