"""The Atlas as a person uses it, in Debian's chromium against the real stack with the seeds:
what each view shows, time travel through the address and the controls, the live feed,
keyboard-only use, accessibility, bad addresses, signing in; and screenshots of each view."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import Atlas, DroppingProxy, Seeded, new_atlas

LIVE_WAIT_MS = 2000  # the bound: an event posted shows up within 2 s
WEEK_20 = "week 20 of 2023 (15\u201321 May 2023)"  # the page writes ranges with an en dash


def _meeting(event_id: str, a: str, b: str, city: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "https://wire.example/browser",
        "type": "diplomacy.meeting.held",
        "time": "2023-05-20T00:00:00Z",
        "data": {
            "occurred": "2023-05-19",
            "parties": [a, b],
            "city": city,
            "characterisations": ["frank"],
        },
    }


async def _no_serious_violations(atlas: Atlas, view: str) -> None:
    violations = await atlas.axe()
    assert violations == [], f"{view}: {violations}"


# --- the world ----------------------------------------------------------------------------------


async def test_choosing_china_shows_russia_with_its_no_limits_partnership(atlas: Atlas) -> None:
    page = atlas.page
    await page.get_by_role("combobox", name="Country").fill("China")
    await page.get_by_role("combobox", name="Country").press("Enter")
    await expect(page).to_have_url(re.compile(r"\?country=CHN$"))
    russia = page.get_by_role("row").filter(has=page.get_by_role("link", name="Russia"))
    await expect(russia).to_contain_text("“no limits”")
    await expect(russia).to_contain_text("Cordial")
    await expect(page.locator('path[data-code="RUS"]')).to_have_attribute("fill", "#91bfdb")
    await expect(page.locator('path[data-code="CHN"]')).to_have_attribute("aria-pressed", "true")
    # The list is the map's text alternative: each coloured country is named with its climate.
    label = await page.locator('path[data-code="RUS"]').get_attribute("aria-label")
    assert label is not None
    assert "cordial" in label
    assert "no limits" in label
    await _no_serious_violations(atlas, "world")
    await atlas.screenshot("world")
    await atlas.phone()
    await atlas.screenshot("world")


async def test_the_list_sorts_by_score_last_contact_and_events(atlas: Atlas) -> None:
    page = atlas.page
    await atlas.open("/?country=CHN")
    table = page.locator("table.relations")
    await expect(table).to_be_visible()

    async def partners() -> list[str]:
        return [t.strip() for t in await table.locator("tbody th a").all_inner_texts()]

    by_score = await partners()
    await page.get_by_role("button", name=re.compile("^Events")).click()
    await expect(table.locator("th[aria-sort=descending]")).to_contain_text("Events")
    by_events = await partners()
    assert by_events[0] == "Russia"  # five events, the most
    assert by_events != by_score
    await page.get_by_role("button", name=re.compile("^Events")).click()
    await expect(table.locator("th[aria-sort=ascending]")).to_contain_text("Events")
    assert (await partners())[-1] == "Russia"
    await page.get_by_role("button", name=re.compile("^Last contact")).click()
    assert (await partners())[0] == "United States"  # 10-11 May 2023, the latest


# --- a pair, and time travel --------------------------------------------------------------------


async def test_iran_saudi_reads_full_today_and_not_as_of_28_february_by_the_address(
    atlas: Atlas,
) -> None:
    page = atlas.page
    status = page.locator(".card").filter(has_text="Diplomatic status").locator(".big")
    await atlas.open("/relations/IRN/SAU")
    await expect(status).to_have_text("Full")
    await expect(page.locator(".card").filter(has_text="Diplomatic status")).to_contain_text(
        "mediated by China"
    )
    await expect(page.locator(".record-item")).to_have_count(2)
    await expect(page.locator(".record-item").first).to_contain_text("March 2023")
    await _no_serious_violations(atlas, "pair")
    await atlas.screenshot("pair")
    await atlas.phone()
    await atlas.screenshot("pair")
    await atlas.desktop()
    await atlas.open("/relations/IRN/SAU?as_of=2023-02-28")
    await expect(status).to_have_text("Unknown")
    await expect(page.locator("#time-banner")).to_contain_text("28 February 2023")
    await expect(page.locator(".record-slot")).to_contain_text("No event of this pair")


async def test_iran_saudi_as_of_28_february_through_the_date_control(atlas: Atlas) -> None:
    page = atlas.page
    status = page.locator(".card").filter(has_text="Diplomatic status").locator(".big")
    await atlas.open("/relations/IRN/SAU")
    await expect(status).to_have_text("Full")
    await page.get_by_label("As of").fill("2023-02-28")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"/relations/IRN/SAU\?as_of=2023-02-28$"))
    await expect(status).to_have_text("Unknown")
    await page.get_by_role("button", name="Now").click()
    await expect(page).to_have_url(re.compile(r"/relations/IRN/SAU$"))
    await expect(status).to_have_text("Full")


async def test_known_at_before_the_seeds_knows_nothing(atlas: Atlas) -> None:
    page = atlas.page
    await atlas.open("/relations/IRN/SAU?known_at=2000-01-01T00:00:00Z")
    status = page.locator(".card").filter(has_text="Diplomatic status").locator(".big")
    await expect(status).to_have_text("Unknown")
    await expect(page.locator("#time-banner")).to_contain_text("as Chancery knew it at")
    await expect(page.get_by_label("As known at (UTC)")).to_have_value("2000-01-01T00:00")


# --- a person -----------------------------------------------------------------------------------


async def test_li_hui_goes_to_five_countries_in_the_week_of_15_may(atlas: Atlas) -> None:
    page = atlas.page
    await atlas.open("/people/li-hui")
    await expect(page.get_by_role("heading", name="Li Hui", level=1)).to_be_visible()
    legs = page.get_by_role("list", name="Legs, in order").locator("li")
    await expect(legs).to_have_count(5)
    names = [t.split("\n")[0] for t in await legs.locator("a").all_inner_texts()]
    assert names == ["Russia", "Ukraine", "France", "Germany", "Poland"]
    for text in await legs.all_inner_texts():
        assert WEEK_20 in text
    await expect(page.locator(".trip-when")).to_contain_text(WEEK_20)
    # On the timeline each leg, known only to the week, is a band over that week.
    await expect(page.locator(".trip-timeline rect.band.precision-week")).to_have_count(5)
    await expect(page.locator(".trip-map .stop")).to_have_count(5)
    await expect(page.locator(".history")).to_contain_text("Announced")
    await _no_serious_violations(atlas, "person")
    await atlas.screenshot("person")
    await atlas.phone()
    await atlas.screenshot("person")


# --- live ---------------------------------------------------------------------------------------


async def test_an_event_posted_shows_in_the_feed_and_the_open_pair_view(
    atlas: Atlas, seeded: Seeded
) -> None:
    page = atlas.page
    await atlas.open("/relations/CHN/USA")
    await expect(page.locator(".live-state")).to_have_text("Live")
    await expect(page.locator(".record-item").first).to_be_visible()
    await page.evaluate("window.__notReloaded = true")
    event_id = f"browser-live-{uuid.uuid4().hex[:8]}"
    await seeded.stack.post([_meeting(event_id, "CHN", "USA", "Valletta")])
    feed_item = page.locator(f'.feed-item[data-event-id="{event_id}"]')
    pair_item = page.locator(f'.record-item[data-event-id="{event_id}"]')
    await asyncio.gather(
        expect(feed_item).to_contain_text("Valletta", timeout=LIVE_WAIT_MS),
        expect(pair_item).to_contain_text("Valletta", timeout=LIVE_WAIT_MS),
    )
    await expect(pair_item).to_contain_text("19 May 2023")
    await expect(page.locator(".card").filter(has_text="Last contact")).to_contain_text(
        "19 May 2023"
    )
    assert await page.evaluate("window.__notReloaded") is True


async def test_an_event_updates_the_open_person_view(atlas: Atlas, seeded: Seeded) -> None:
    page = atlas.page
    await atlas.open("/people/li-hui")
    await expect(page.locator(".live-state")).to_have_text("Live")
    await expect(page.locator(".panel-head .trip-status")).to_have_text("Announced")
    await page.evaluate("window.__notReloaded = true")
    await seeded.stack.post(
        [
            {
                "specversion": "1.0",
                "id": f"li-hui-postponed-{uuid.uuid4().hex[:8]}",
                "source": "https://wire.example/browser",
                "type": "diplomacy.visit.postponed",
                "time": "2023-05-14T00:00:00Z",
                "data": {
                    "occurred": "2023-05-14",
                    "trip_id": "li-hui-ukraine-settlement-2023",
                    "traveller": {"id": "li-hui", "name": "Li Hui", "country": "CHN"},
                    "legs": [{"country": "RUS"}],
                    "reason": "scheduling",
                },
            }
        ]
    )
    await expect(page.locator(".panel-head .trip-status")).to_have_text(
        "Postponed", timeout=LIVE_WAIT_MS * 2
    )
    assert await page.evaluate("window.__notReloaded") is True


async def test_the_feed_resumes_after_a_drop_without_a_gap(
    chromium: Browser, seeded: Seeded
) -> None:
    proxy = DroppingProxy(seeded.stack.api_url)
    atlas = await new_atlas(chromium, await proxy.start())
    atlas.may_fail.add("/v1/stream")  # the connection the drop cuts
    page = atlas.page
    try:
        await atlas.open(f"/?token={seeded.stack.keys.read}")
        await expect(page.locator(".live-state")).to_have_text("Live")
        before = f"browser-before-{uuid.uuid4().hex[:8]}"
        await seeded.stack.post([_meeting(before, "DEU", "FRA", "Aachen")])
        await expect(page.locator(f'.feed-item[data-event-id="{before}"]')).to_have_count(1)
        proxy.drop()
        during = f"browser-during-{uuid.uuid4().hex[:8]}"
        await seeded.stack.post([_meeting(during, "DEU", "POL", "Görlitz")])
        await expect(page.locator(f'.feed-item[data-event-id="{during}"]')).to_have_count(
            1, timeout=15_000
        )
        await expect(page.locator(".live-state")).to_have_text("Live")
        # The browser resumed after the last event it had, and nothing came twice.
        assert any("last-event-id:" in r.lower() for r in proxy.stream_requests[1:])
        await expect(page.locator(f'.feed-item[data-event-id="{before}"]')).to_have_count(1)
    finally:
        await atlas.context.close()
        await proxy.close()
    assert atlas.problems == [], atlas.problems


# --- keyboard only ------------------------------------------------------------------------------


async def _tab_until(atlas: Atlas, script: str, limit: int) -> None:
    for _ in range(limit):
        await atlas.page.keyboard.press("Tab")
        if await atlas.page.evaluate(script):
            return
    pytest.fail(f"{limit} presses of Tab never reached: {script}")


async def test_the_keyboard_alone_reaches_a_pair_view(atlas: Atlas) -> None:
    page = atlas.page
    await atlas.open("/")
    await _tab_until(atlas, "document.activeElement?.id === 'country-input'", 20)
    await page.keyboard.type("Iran")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"\?country=IRN$"))
    await _tab_until(
        atlas, "document.activeElement?.closest('table.relations tbody a') !== null", 40
    )
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/relations/IRN/[A-Z]{3}$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Iran \u2013")


async def test_the_arrow_keys_move_through_the_countries_of_the_map(atlas: Atlas) -> None:
    page = atlas.page
    await atlas.open("/?country=FRA")
    await expect(page.locator('path[data-code="FRA"]')).to_have_attribute("tabindex", "0")
    await page.locator('path[data-code="FRA"]').focus()
    await page.keyboard.press("ArrowRight")
    moved = await page.evaluate("document.activeElement?.dataset?.code")
    assert moved not in (None, "FRA")
    await page.keyboard.press("ArrowLeft")
    assert await page.evaluate("document.activeElement?.dataset?.code") != moved
    await page.keyboard.press("Enter")
    code = await page.evaluate("document.activeElement?.dataset?.code")
    await expect(page).to_have_url(re.compile(rf"\?country={code}$"))


# --- bad input ----------------------------------------------------------------------------------


async def test_an_unknown_country_or_person_is_a_clear_not_found(atlas: Atlas) -> None:
    page = atlas.page
    atlas.expect_status(422, "/v1/relations/IRN/XYZ")
    atlas.expect_status(422, "/v1/countries/QQQ/relations")
    atlas.expect_status(404, "/v1/people/nobody-at-all")
    atlas.expect_status(404, "/v1/itineraries/nobody-at-all")
    atlas.expect_status(404, "/no/such/page")
    await atlas.open("/relations/IRN/XYZ")
    await expect(page.get_by_role("heading", level=1)).to_have_text("No country “XYZ”")
    await expect(page.locator(".not-found")).to_contain_text("404")
    await _no_serious_violations(atlas, "not found")
    await atlas.screenshot("not-found")
    await atlas.open("/?country=QQQ")
    await expect(page.locator(".not-found h1")).to_have_text("No country “QQQ”")
    await atlas.open("/people/nobody-at-all")
    await expect(page.get_by_role("heading", level=1)).to_have_text("No person “nobody-at-all”")
    await atlas.open("/no/such/page")
    await expect(page.get_by_role("heading", level=1)).to_have_text("No such page")


async def test_a_malformed_date_says_what_is_wrong(atlas: Atlas) -> None:
    page = atlas.page
    await atlas.open("/relations/IRN/SAU?as_of=2023-02-30")
    await expect(page.get_by_role("alert")).to_contain_text(
        "as_of “2023-02-30” is not a day of the calendar"
    )
    await atlas.open("/relations/IRN/SAU?known_at=yesterday")
    await expect(page.get_by_role("alert")).to_contain_text(
        "known_at “yesterday” is not an instant"
    )
    await page.get_by_role("link", name="Show the page without it").click()
    await expect(page).to_have_url(re.compile(r"/relations/IRN/SAU$"))


async def test_the_api_s_own_4xx_answer_is_shown(atlas: Atlas) -> None:
    page = atlas.page
    atlas.expect_status(422, "/v1/relations/CHN/CHN")
    await atlas.open("/relations/CHN/CHN")
    problem = page.locator(".problem").first
    await expect(problem).to_contain_text("The API answered 422")
    await expect(problem).to_contain_text("a pair is two different actors")


# --- signing in ---------------------------------------------------------------------------------


async def test_the_link_signs_in_and_the_key_stays_out_of_the_page(
    chromium: Browser, seeded: Seeded
) -> None:
    key = seeded.stack.keys.read
    atlas = await new_atlas(chromium, seeded.stack.api_url)
    try:
        await atlas.open(f"/relations/IRN/SAU?token={key}")
        await expect(atlas.page).to_have_url(atlas.url("/relations/IRN/SAU"))
        await expect(atlas.page.locator("#session")).to_contain_text("Signed in as e2e-reader")
        (cookie,) = await atlas.context.cookies()
        assert cookie["name"] == "chancery_session"
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert key not in cookie["value"]
        assert key not in await atlas.page.content()
        assert await atlas.page.evaluate("document.cookie") == ""  # no script can read it
        await atlas.page.get_by_role("button", name="Sign out").click()
        await expect(atlas.page).to_have_url(re.compile("/login$"))
        assert await atlas.context.cookies() == []
    finally:
        await atlas.context.close()
    assert atlas.problems == []


async def test_the_sign_in_page_takes_a_key_and_goes_back(
    chromium: Browser, seeded: Seeded
) -> None:
    key = seeded.stack.keys.read
    atlas = await new_atlas(chromium, seeded.stack.api_url)
    atlas.expect_status(401, "/v1/")  # the first read, before signing in, sends it to sign in
    atlas.expect_status(401, "/login")  # the wrong key
    try:
        await atlas.open("/people/li-hui")
        await expect(atlas.page).to_have_url(re.compile(r"/login\?next=%2Fpeople%2Fli-hui$"))
        await _no_serious_violations(atlas, "sign-in")
        await atlas.screenshot("sign-in")
        await atlas.page.get_by_label("API key").fill("chk_000000000000_" + "A" * 43)
        await atlas.page.get_by_role("button", name="Sign in").click()
        await expect(atlas.page.get_by_role("alert")).to_contain_text("not valid")
        await atlas.page.get_by_label("API key").fill(key)
        await atlas.page.get_by_role("button", name="Sign in").click()
        await expect(atlas.page).to_have_url(atlas.url("/people/li-hui"))
        await expect(atlas.page.get_by_role("heading", name="Li Hui", level=1)).to_be_visible()
        assert key not in atlas.page.url
        assert key not in await atlas.page.content()
    finally:
        await atlas.context.close()
    assert atlas.problems == []
