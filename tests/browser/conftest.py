"""The Atlas in a real browser: Debian's chromium, driven by Playwright, against the real stack.

The stack is the end-to-end suite's (tests/e2e/conftest.py: ingest, the live projector and the
API on the session's Kafka and Redis, one per module), with the article's seeds loaded
through ingest. Playwright cannot download a browser here, so it launches /usr/bin/chromium
(`make test` and .ci/run install it), headless, with the flags a closed network needs.

The tests run in the suite's asyncio loop, as the stack does (its API is served from that
loop), so they use Playwright's async API.

Every page a test opens records console errors, failed requests and error answers; the page
fixture fails the test if any happened that the test did not expect (`atlas.expect_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
)

from services.cli.local import free_ports
from tests.e2e import conftest as e2e
from tests.e2e.conftest import Stack, seed_events

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "atlas" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the closed network refuses what it would fetch
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = ViewportSize(width=1280, height=800)

stack = e2e.stack  # the end-to-end suite's fixture: the real stack, one per module
PHONE = ViewportSize(width=390, height=844)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


def chromium_path() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(found).exists(), "Debian's chromium is missing: make browser installs it"
    return found


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Seeded:
    stack: Stack
    position: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def seeded(stack: Stack) -> Seeded:
    """The stack with the article's seeds applied."""
    position = await stack.post(seed_events())
    await stack.get("/v1/relations/IRN/SAU", min_position=position)
    return Seeded(stack, position)


@dataclass
class Atlas:
    """One browser page on the stack's API, and what went wrong on it."""

    page: Page
    context: BrowserContext
    base: str
    problems: list[str] = field(default_factory=list)
    expected: set[tuple[int, str]] = field(default_factory=set)
    may_fail: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return self.base + path

    async def open(self, path: str) -> None:
        await self.page.goto(self.url(path))

    def expect_status(self, status: int, path_part: str) -> None:
        """An error answer the test provokes on purpose."""
        self.expected.add((status, path_part))

    def _watch(self) -> None:
        page = self.page

        def on_console(message: Any) -> None:
            if message.type == "error":
                text = message.text
                # A resource the test expects to fail is logged by the browser as an error.
                if "Failed to load resource" in text and (self.expected or self.may_fail):
                    return
                self.problems.append(f"console error: {text}")

        def on_failed(request: Any) -> None:
            failure = request.failure or ""
            # Leaving a page aborts what it was still loading (its open stream, say): the
            # browser's doing, not a failure.
            if "ERR_ABORTED" in failure:
                return
            if any(part in request.url for part in self.may_fail):
                return
            self.problems.append(f"request failed: {request.method} {request.url} {failure}")

        def on_response(response: Any) -> None:
            if response.status >= 400 and not any(
                response.status == status and part in response.url for status, part in self.expected
            ):
                self.problems.append(f"answer {response.status}: {response.url}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", on_failed)
        page.on("response", on_response)

    async def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page as it is now."""
        await self.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
        violations: list[dict[str, Any]] = await self.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))"""
        )
        return [v for v in violations if v["impact"] in {"serious", "critical"}]

    async def screenshot(self, name: str) -> Path:
        """The viewport, into tests/browser/screenshots/NAME-WxH.png."""
        size = self.page.viewport_size or DESKTOP
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"
        await self.page.wait_for_load_state("networkidle")
        await self.page.screenshot(path=str(path), animations="disabled")
        return path

    async def phone(self) -> None:
        await self.page.set_viewport_size(PHONE)

    async def desktop(self) -> None:
        await self.page.set_viewport_size(DESKTOP)


async def new_atlas(browser: Browser, base: str, **options: Any) -> Atlas:
    context = await browser.new_context(
        viewport=DESKTOP, timezone_id="UTC", locale="en-GB", **options
    )
    page = await context.new_page()
    page.set_default_timeout(10_000)
    atlas = Atlas(page, context, base)
    atlas._watch()
    return atlas


@pytest_asyncio.fixture(loop_scope="session")
async def atlas(chromium: Browser, seeded: Seeded) -> AsyncIterator[Atlas]:
    """A page signed in with the stack's read key (by the link `make run` prints)."""
    page = await new_atlas(chromium, seeded.stack.api_url)
    await page.open(f"/?token={seeded.stack.keys.read}")
    await page.page.wait_for_url(page.url("/"))
    try:
        yield page
    finally:
        await page.context.close()
    assert page.problems == [], "\n".join(page.problems)


class DroppingProxy:
    """A TCP proxy on loopback in front of the API; `drop()` cuts every connection through it
    at once, as a network failure does. Keeps the stream requests it forwarded."""

    def __init__(self, upstream: str) -> None:
        self.upstream_host, port = upstream.removeprefix("http://").split(":")
        self.upstream_port = int(port)
        self.stream_requests: list[str] = []
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        (port,) = free_ports(1)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        return f"http://127.0.0.1:{port}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                if b"GET /v1/stream" in chunk:
                    self.stream_requests.append(chunk.decode("latin-1"))
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}

    def drop(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
