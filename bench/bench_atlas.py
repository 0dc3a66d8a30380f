"""The Atlas in headless Chromium, over the real pipeline with real data.

The stack of bench_api (ingest, projector and API as processes, Kafka and Redis from the
framework), with the article's seeds and the repository's GDELT and ICEWS samples imported
through ingest as `chancery import` does. Then, in Debian's chromium (as the browser tests
drive it), each run in a fresh browser context, so with nothing cached:

1. First load of `/`: navigation start to the page's `atlas:interactive` mark (the world map
   drawn, its handlers attached). Budget: under 1 s. Median of the runs.
2. What that load transferred, compressed as sent (the document and every asset and API
   answer, headers included; the live stream left out): the Resource Timing `transferSize`s.
   Budget: under 500 KB.
3. Recolour: with a country's relations on the map, choose another the way a person does
   (type it, Enter) and time the page's `atlas:recolour` measure: from the choice to the map
   repainted, the fetch of that country's relations included. Budget: under 100 ms. Median
   over a rotation of countries; the painting alone (`atlas:paint`) is reported beside it.

There is no baseline: the budgets are absolute.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, async_playwright

from chancery.positions import Position
from services.cli.seeds import load_seeds

from .bench_api import Stack, stack
from .framework import BenchEnv, Row

NAME = "atlas"
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "fixtures" / "reference"
IMPORTS = [
    ("gdelt", SAMPLES / "gdelt2_export_20191024143000.tsv.zip"),
    ("icews", SAMPLES / "icews_events_2018-06-01_02_sample.tab.zip"),
]
# The flags the browser tests use (tests/browser/conftest.py): root, and a closed network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROTATION = ["USA", "RUS", "IRN", "DEU", "GBR", "FRA", "IND", "UKR", "ISR", "TUR", "JPN", "CHN"]
INTERACTIVE_MS = 1000
TRANSFER_KB = 500
RECOLOUR_MS = 100


def _load(s: Stack) -> None:
    """The seeds and both samples through ingest, as `make run` and `chancery import` send them."""
    load_seeds(s.ingest_url, s.write_key)
    env = {**os.environ, "CHANCERY_KEY": s.write_key, "CHANCERY_INGEST_URL": s.ingest_url}
    for dataset, path in IMPORTS:
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "import", dataset, str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"import {dataset}: {done.stdout[-500:]} {done.stderr[-500:]}")


def _wait_applied(s: Stack, timeout_s: float = 300) -> int:
    """Once the projector has applied everything: how many events the log holds."""
    headers = {"Authorization": f"Bearer {s.read_key}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(f"{s.api_url}/v1/relations/CHN/USA", headers=headers, timeout=10)
        if response.status_code == 200 and response.headers.get("Chancery-Lag") == "0":
            applied = Position.parse(response.headers["Chancery-Position"])
            return sum(offset + 1 for _, offset in applied)
        time.sleep(0.5)
    raise RuntimeError("the projector did not catch up with the imports")


async def _until(page: Page, expression: str, timeout_s: float = 30) -> None:
    """Poll `expression` in the page (wait_for_function evaluates a string, which the page's
    Content-Security-Policy forbids; page.evaluate goes through the debugger and may)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never had {expression}")
        await asyncio.sleep(0.005)


def _session_cookie(s: Stack) -> dict[str, Any]:
    response = httpx.get(f"{s.api_url}/", params={"token": s.read_key}, timeout=10)
    name, value = response.headers["set-cookie"].split(";")[0].split("=", 1)
    host = s.api_url.removeprefix("http://").split(":")[0]
    return {"name": name, "value": value, "domain": host, "path": "/"}


async def _first_load(browser: Browser, s: Stack, cookie: dict[str, Any]) -> tuple[float, int]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        await context.add_cookies([cookie])  # type: ignore[list-item]
        page = await context.new_page()
        await page.goto(f"{s.api_url}/")
        await _until(page, "performance.getEntriesByName('atlas:interactive').length > 0")
        interactive: float = await page.evaluate(
            "performance.getEntriesByName('atlas:interactive')[0].startTime"
        )
        await page.wait_for_load_state("networkidle")
        transferred: int = await page.evaluate(
            """() => {
                const entries = [...performance.getEntriesByType('navigation'),
                                 ...performance.getEntriesByType('resource')];
                return entries.filter(e => !e.name.includes('/v1/stream'))
                              .reduce((sum, e) => sum + e.transferSize, 0);
            }"""
        )
        return interactive, transferred
    finally:
        await context.close()


async def _recolours(
    browser: Browser, s: Stack, cookie: dict[str, Any], countries: list[str]
) -> tuple[list[float], list[float]]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        await context.add_cookies([cookie])  # type: ignore[list-item]
        page = await context.new_page()
        await page.goto(f"{s.api_url}/?country=CHN")
        await _until(page, "performance.getEntriesByName('atlas:recoloured').length > 0")
        box = page.get_by_role("combobox", name="Country")
        totals: list[float] = []
        paints: list[float] = []
        for n, code in enumerate(countries, start=1):
            await box.fill(code)
            await box.press("Enter")
            await _until(page, f"performance.getEntriesByName('atlas:recolour').length >= {n}")
            total, paint = await page.evaluate(
                """() => [performance.getEntriesByName('atlas:recolour').at(-1).duration,
                          performance.getEntriesByName('atlas:paint').at(-1).duration]"""
            )
            totals.append(total)
            paints.append(paint)
        return totals, paints
    finally:
        await context.close()


async def _measure(s: Stack, runs: int) -> tuple[list[float], list[int], list[float], list[float]]:
    cookie = _session_cookie(s)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            await _first_load(browser, s, cookie)  # warm the API's own caches, not the browser's
            loads = [await _first_load(browser, s, cookie) for _ in range(runs)]
            rotation = ROTATION * (2 if runs > 3 else 1)
            totals, paints = await _recolours(browser, s, cookie, rotation)
        finally:
            await browser.close()
    return [t for t, _ in loads], [b for _, b in loads], totals, paints


def run(env: BenchEnv, quick: bool = False) -> list[Row]:
    runs = 3 if quick else 7
    with stack(env, db=6) as s:
        _load(s)
        events = _wait_applied(s)
        interactive, transferred, totals, paints = asyncio.run(_measure(s, runs))
    load_ms = statistics.median(interactive)
    kb = statistics.median(transferred) / 1024
    recolour = statistics.median(totals)
    paint = statistics.median(paints)
    data = f"seeds, GDELT and ICEWS samples: {events:,} events in the log"
    return [
        Row(
            NAME,
            "first load of / to interactive, cold cache",
            "ms",
            None,
            load_ms,
            f"< {INTERACTIVE_MS} ms",
            load_ms < INTERACTIVE_MS,
            note=f"median of {runs}, max {max(interactive):.0f} ms; {data}",
        ),
        Row(
            NAME,
            "first load of /, transferred (compressed)",
            "KB",
            None,
            kb,
            f"< {TRANSFER_KB} KB",
            kb < TRANSFER_KB,
            note="document, assets and API answers with their headers; the stream left out",
        ),
        Row(
            NAME,
            "recolour after choosing another country",
            "ms",
            None,
            recolour,
            f"< {RECOLOUR_MS} ms",
            recolour < RECOLOUR_MS,
            note=f"median of {len(totals)}, max {max(totals):.0f} ms, from the choice to the map "
            f"repainted, the country's relations fetched; painting alone {paint:.1f} ms",
        ),
    ]
