"""Every endpoint over the real stack, answering what a reader of the article expects.

The article's events (seeds/article.jsonl) go through ingest; every read passes the position
ingest returned as min_position, so it sees them. One seed, the Iran-Saudi restoration, is
sent a moment later than the rest, so "known at" that moment differs from "now"; an extra
event is sent and then retracted, so "known at" before the retraction differs too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from chancery.positions import Position
from tests.e2e.conftest import Stack, seed_events

pytestmark = pytest.mark.e2e

SOURCE = "https://chancery.example/seeds/article-li-hui-2023-05-12"
LATER = {"iran-saudi-relations-restored"}
EXTRA_SOURCE = "https://wire.example/e2e"


@dataclass(frozen=True)
class Article:
    position: str  # covers every event sent
    before_restoration: datetime  # recorded everything but the Iran-Saudi restoration
    before_retraction: datetime  # the extra France-Germany event counted then


def extra_event() -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "fra-deu-consult",
        "source": EXTRA_SOURCE,
        "type": "diplomacy.event.coded",
        "time": "2023-05-12T00:00:00Z",
        "data": {"actor1": "FRA", "actor2": "DEU", "cameo": "040", "occurred": "2023-05-09"},
    }


def retraction() -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "fra-deu-consult-retracted",
        "source": EXTRA_SOURCE,
        "type": "diplomacy.event.retracted",
        "time": "2023-05-13T00:00:00Z",
        "data": {"target": {"source": EXTRA_SOURCE, "id": "fra-deu-consult"}, "reason": "test"},
    }


async def _instant() -> datetime:
    await asyncio.sleep(0.02)
    at = datetime.now(UTC)
    await asyncio.sleep(0.02)
    return at


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def article(stack: Stack) -> Article:
    seeds = seed_events()
    first = await stack.post([e for e in seeds if e["id"] not in LATER] + [extra_event()])
    before_restoration = await _instant()
    second = await stack.post([e for e in seeds if e["id"] in LATER])
    before_retraction = await _instant()
    third = await stack.post([retraction()])
    position = Position.parse(first).merge(Position.parse(second)).merge(Position.parse(third))
    return Article(position.token(), before_restoration, before_retraction)


# --- relations ----------------------------------------------------------------------------------


async def test_china_and_russia_have_a_no_limits_partnership(
    stack: Stack, article: Article
) -> None:
    body = await stack.get("/v1/relations/rus/chn", min_position=article.position)
    assert body["pair"] == "CHN|RUS"
    assert body["partnership"]["label"] == "no limits"
    assert body["partnership"]["event_ids"] == [{"source": SOURCE, "id": "china-russia-no-limits"}]
    assert body["climate"] in {"cordial", "close"}
    # as of the day the article appeared, Li Hui's trip (week 20) is their next contact
    then = await stack.get("/v1/relations/CHN/RUS", as_of="2023-05-12")
    assert then["next_contact"]["when"] == "2023-W20"
    assert then["next_contact"]["kind"] == "visit"


async def test_china_and_the_us_are_strained_with_the_vienna_talks_as_last_contact(
    stack: Stack, article: Article
) -> None:
    body = await stack.get("/v1/relations/USA/CHN", min_position=article.position)
    assert body["climate"] == "strained"
    assert body["score"] < -1
    assert body["last_contact"] == {
        "when": "2023-05-10/2023-05-11",
        "kind": "meeting",
        "event": {"source": SOURCE, "id": "wang-yi-sullivan-vienna-talks"},
    }
    assert body["next_contact"] is None  # Blinken's visit has no new date
    assert body["quad_counts"]["4"] == 2  # the balloon and the postponed visit
    assert set(body) >= {
        "pair", "status", "status_since", "partnership", "score", "event_count",
        "quad_counts", "last_contact", "next_contact", "position",
    }  # fmt: skip
    # in January nothing had happened yet between them
    january = await stack.get("/v1/relations/chn/usa", as_of="2023-01-31")
    assert january["event_count"] == 0
    assert january["last_contact"] is None


async def test_iran_and_saudi_arabia_restored_relations_in_march_mediated_by_china(
    stack: Stack, article: Article
) -> None:
    now = await stack.get("/v1/relations/SAU/irn", min_position=article.position)
    assert (now["status"], now["status_since"], now["mediator"]) == ("full", "2023-03", "CHN")
    assert [e["id"] for e in now["status_events"]] == ["iran-saudi-relations-restored"]
    february = await stack.get("/v1/relations/IRN/SAU", as_of="2023-02-28")
    assert february["status"] == "unknown"
    assert february["event_count"] == 0
    # before the restoration was recorded, Chancery knew of the talks only
    known = await stack.get(
        "/v1/relations/IRN/SAU", known_at=article.before_restoration.isoformat()
    )
    assert known["status"] == "unknown"
    assert known["event_count"] == now["event_count"] - 1 == 1
    assert known["known_at"] is not None


async def test_known_at_before_a_retraction_still_counts_the_retracted_event(
    stack: Stack, article: Article
) -> None:
    now = await stack.get("/v1/relations/FRA/DEU", min_position=article.position)
    assert now["event_count"] == 0
    assert now["status"] == "unknown"
    then = await stack.get("/v1/relations/FRA/DEU", known_at=article.before_retraction.isoformat())
    assert then["event_count"] == 1
    assert then["last_contact"]["event"]["id"] == "fra-deu-consult"
    timeline = await stack.get("/v1/relations/FRA/DEU/timeline")
    assert timeline["items"] == []
    found = await stack.get("/v1/events/fra-deu-consult")
    assert [m["retracted"] for m in found["matches"]] == [True]


async def test_codes_are_checked_and_a_quiet_pair_is_unknown(
    stack: Stack, article: Article
) -> None:
    response = await stack.api.get("/v1/relations/CHN/XYZ")
    assert response.status_code == 422
    assert "'XYZ'" in response.json()["detail"]
    quiet = await stack.get("/v1/relations/bra/arg", min_position=article.position)
    assert (quiet["status"], quiet["event_count"], quiet["last_contact"]) == ("unknown", 0, None)


async def test_the_relations_of_china_page_through_every_partner_once(
    stack: Stack, article: Article
) -> None:
    everything = await stack.get(
        "/v1/relations", country="chn", sort="event_count", min_position=article.position
    )
    partners = [item["pair"] for item in everything["items"]]
    assert {"CHN|RUS", "CHN|USA", "CHN|UKR", "CHN|IRN", "CHN|SAU"} <= set(partners)
    counts = [item["event_count"] for item in everything["items"]]
    assert counts == sorted(counts, reverse=True)
    paged: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"country": "CHN", "sort": "event_count", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await stack.get("/v1/relations", **params)
        paged += [item["pair"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == partners
    by_contact = await stack.get("/v1/relations", country="CHN", sort="last_contact")
    assert by_contact["items"][0]["pair"] == "CHN|USA"  # Vienna, 10-11 May


# --- timelines ----------------------------------------------------------------------------------


async def test_the_china_us_timeline_runs_from_the_balloon_to_vienna(
    stack: Stack, article: Article
) -> None:
    body = await stack.get("/v1/relations/usa/chn/timeline", min_position=article.position)
    ids = [item["event"]["id"] for item in body["items"]]
    assert set(ids[:2]) == {"spy-balloon-shot-down", "blinken-beijing-visit-postponed"}
    assert ids[-2:] == ["wang-yi-sullivan-vienna-talks", "china-blames-nato-and-us"]
    meetings = await stack.get("/v1/relations/CHN/USA/timeline", type="meeting.held")
    assert [i["event"]["id"] for i in meetings["items"]] == ["wang-yi-sullivan-vienna-talks"]
    may = await stack.get(
        "/v1/relations/CHN/USA/timeline", **{"from": "2023-05-01", "to": "2023-05-11"}
    )
    assert [i["event"]["id"] for i in may["items"]] == ["wang-yi-sullivan-vienna-talks"]
    newest_first = await stack.get("/v1/relations/CHN/USA/timeline", order="desc")
    assert [i["event"]["id"] for i in newest_first["items"]] == ids[::-1]
    item = body["items"][-1]
    assert item["event"]["recordedtime"]
    assert Position.parse(item["log_position"]).topic == stack.topic


async def test_the_china_timeline_pages_without_gaps_or_repeats(
    stack: Stack, article: Article
) -> None:
    whole = await stack.get("/v1/countries/CHN/timeline", min_position=article.position)
    ids = [i["event"]["id"] for i in whole["items"]]
    assert len(ids) == len(set(ids)) >= 12
    paged: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await stack.get("/v1/countries/chn/timeline", **params)
        paged += [i["event"]["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == ids
    bad = await stack.api.get("/v1/countries/CHN/timeline", params={"type": "meeting.hold"})
    assert bad.status_code == 422


# --- itineraries, visits, people, events -------------------------------------------------------


async def test_li_hui_travels_in_week_20_to_five_countries(stack: Stack, article: Article) -> None:
    body = await stack.get("/v1/itineraries/li-hui", min_position=article.position)
    (trip,) = body["trips"]
    assert (trip["status"], trip["planned"]) == ("announced", "2023-W20")
    assert [leg["country"] for leg in trip["legs"]] == ["RUS", "UKR", "FRA", "DEU", "POL"]
    assert {leg["status"] for leg in trip["legs"]} == {"planned"}
    assert body["person"]["role"] == "special representative for Eurasian affairs"
    before = await stack.get("/v1/itineraries/li-hui", as_of="2023-05-11")
    assert before["trips"] == []  # announced on the 12th
    early = await stack.get(
        "/v1/itineraries/li-hui", known_at=article.before_restoration.isoformat()
    )
    assert [t["trip_id"] for t in early["trips"]] == [trip["trip_id"]]
    unknown = await stack.get("/v1/itineraries/nobody-at-all")
    assert unknown["trips"] == []


async def test_blinkens_visit_to_beijing_is_postponed(stack: Stack, article: Article) -> None:
    body = await stack.get("/v1/itineraries/antony-blinken", min_position=article.position)
    (trip,) = body["trips"]
    assert (trip["status"], trip["planned"]) == ("postponed", None)
    assert [(leg["country"], leg["city"], leg["status"]) for leg in trip["legs"]] == [
        ("CHN", "Beijing", "postponed")
    ]


async def test_visits_to_and_from_a_country(stack: Stack, article: Article) -> None:
    ukraine = await stack.get("/v1/visits", country="ukr", min_position=article.position)
    assert [(v["traveller"]["id"], v["direction"], v["when"]) for v in ukraine["items"]] == [
        ("li-hui", "to", "2023-W20")
    ]
    abroad = await stack.get("/v1/visits", country="CHN", direction="from")
    assert sorted(v["country"] for v in abroad["items"]) == ["DEU", "FRA", "POL", "RUS", "UKR"]
    coming = await stack.get("/v1/visits", country="CHN", direction="to")
    assert [(v["traveller"]["id"], v["leg_status"]) for v in coming["items"]] == [
        ("antony-blinken", "postponed")
    ]
    postponed = await stack.get("/v1/visits", country="CHN", status="postponed")
    assert [v["trip_id"] for v in postponed["items"]] == ["antony-blinken-beijing-2023"]
    window = await stack.get(
        "/v1/visits", country="CHN", **{"from": "2023-05-13", "to": "2023-05-31"}
    )
    assert {v["direction"] for v in window["items"]} == {"from"}  # week 20 only
    paged = await stack.get("/v1/visits", country="CHN", limit=2)
    assert len(paged["items"]) == 2
    assert paged["next_cursor"] is not None


async def test_li_hui_is_the_special_representative(stack: Stack, article: Article) -> None:
    body = await stack.get("/v1/people/li-hui", min_position=article.position)
    (appointment,) = body["appointments"]
    assert appointment["role"] == "special representative for Eurasian affairs"
    assert appointment["previous_roles"] == ["ambassador to Moscow"]
    assert [t["destinations"] for t in body["trips"]] == [["RUS", "UKR", "FRA", "DEU", "POL"]]
    missing = await stack.api.get("/v1/people/nobody-at-all")
    assert missing.status_code == 404
    invalid = await stack.api.get("/v1/people/Li Hui")
    assert invalid.status_code == 422


async def test_an_event_by_id_with_its_place_in_the_log(stack: Stack, article: Article) -> None:
    body = await stack.get(
        "/v1/events/wang-yi-sullivan-vienna-talks", min_position=article.position
    )
    (match,) = body["matches"]
    assert match["event"]["data"]["occurred"] == "2023-05-10/2023-05-11"
    assert match["event"]["partitionkey"] == "CHN|USA"
    assert match["retracted"] is False
    assert Position.parse(match["log_position"]).topic == stack.topic
    from_source = await stack.get("/v1/events/wang-yi-sullivan-vienna-talks", source=SOURCE)
    assert from_source["matches"] == body["matches"]
    other = await stack.api.get(
        "/v1/events/wang-yi-sullivan-vienna-talks", params={"source": EXTRA_SOURCE}
    )
    assert other.status_code == 404


# --- caching, auth, CORS, operations ---------------------------------------------------------


async def test_an_unchanged_answer_is_304_with_its_etag(stack: Stack, article: Article) -> None:
    first = await stack.api.get("/v1/relations/CHN/USA", params={"min_position": article.position})
    etag = first.headers["ETag"]
    again = await stack.api.get("/v1/relations/usa/chn", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["ETag"] == etag
    assert "Chancery-Position" in again.headers
    other = await stack.api.get("/v1/relations/CHN/RUS", headers={"If-None-Match": etag})
    assert other.status_code == 200


async def test_reads_need_the_events_read_scope(stack: Stack, article: Article) -> None:
    anonymous = await stack.api.get("/v1/relations/CHN/USA", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = await stack.api.get(
        "/v1/relations/CHN/USA", headers={"Authorization": f"Bearer {stack.keys.nothing}"}
    )
    assert wrong.status_code == 403
    jwt = stack.keys.token(*[], ttl_s=60)
    assert (
        await stack.api.get("/v1/relations/CHN/USA", headers={"Authorization": f"Bearer {jwt}"})
    ).status_code == 403
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await stack.api.get(path, headers={"Authorization": ""})).status_code == 200
    metrics = (await stack.api.get("/metrics")).text
    assert 'chancery_api_requests_total{route="/v1/relations/{a}/{b}",status="200"}' in metrics


async def test_cors_answers_only_the_configured_origin(stack: Stack, article: Article) -> None:
    allowed = await stack.api.get(
        "/v1/relations/CHN/USA", headers={"Origin": "https://app.example"}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "Chancery-Position" in allowed.headers["access-control-expose-headers"]
    other = await stack.api.get("/v1/relations/CHN/USA", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = await stack.api.options(
        "/v1/stream",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Last-Event-ID",
        },
    )
    assert preflight.status_code == 200
