"""One attempt, through the worker's own session (`http_session`) to a real local receiver:
what counts as delivered, what is kept of a failure, Retry-After in both forms, no redirect
followed, the target policy enforced at each new connection, connections kept alive."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from aiohttp import web

from chancery.settings import DeliverSettings
from services.cli.local import free_ports
from services.webhooks import targets
from services.webhooks.app import http_session
from services.webhooks.messages import WebhookMessage
from services.webhooks.sender import BODY_KEPT, WebhookSender
from services.webhooks.targets import IpAddress

pytestmark = pytest.mark.unit

MESSAGE = WebhookMessage("evt_0", b"{}", {"content-type": "application/cloudevents+json"})
NOW = 1_700_000_000.0
LOOPBACK = ["127.0.0.0/8", "::1/128"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Receiver:
    """A local HTTP server: each request is kept, with the client's port, and answered by
    `answer` (204 unless a test says otherwise)."""

    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.bodies: list[bytes] = []
        self.client_ports: list[int] = []
        self.answer: Handler = _no_content
        self.port = 0

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        self.bodies.append(await request.read())
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.client_ports.append(int(peer[1]) if peer else -1)
        return await self.answer(request)


async def _no_content(_: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", found.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    (found.port,) = free_ports(1)
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _sender(
    allowed: list[str] = LOOPBACK, timeout_s: float = 15.0
) -> AsyncIterator[WebhookSender]:
    settings = DeliverSettings(webhook_allowed_networks=allowed, deliver_timeout_s=timeout_s)
    async with http_session(settings) as session:
        yield WebhookSender(session, wall_clock=lambda: NOW)


async def test_a_2xx_is_delivered_and_the_request_is_signed(receiver: Receiver) -> None:
    async with _sender() as sender:
        result = await sender.send(receiver.url(), MESSAGE, b"k")
    assert result.delivered
    (seen,) = receiver.requests
    assert seen.method == "POST"
    assert seen.path == "/hook"
    assert receiver.bodies == [MESSAGE.body]
    assert seen.headers["content-type"] == "application/cloudevents+json"
    assert seen.headers["webhook-id"] == "evt_0"
    assert seen.headers["webhook-timestamp"] == str(int(NOW))
    assert seen.headers["webhook-signature"].startswith("v1,")
    assert seen.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(
    ("retry_after", "seconds"),
    [
        ("7", 7.0),
        (
            format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True),
            30.0,
        ),
        ("soon", None),
    ],
)
async def test_a_failure_keeps_status_reason_and_retry_after(
    receiver: Receiver, retry_after: str, seconds: float | None
) -> None:
    async def slow_down(_: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": retry_after}, text="slow down")

    receiver.answer = slow_down
    async with _sender() as sender:
        result = await sender.send(receiver.url(), MESSAGE, b"k")
    assert not result.delivered
    assert result.status == 429
    assert result.error == "HTTP 429 Too Many Requests: slow down"
    assert result.retry_after_s == seconds


async def test_a_redirect_is_a_failure_not_followed(receiver: Receiver) -> None:
    async def moved(_: web.Request) -> web.StreamResponse:
        return web.Response(status=301, headers={"Location": receiver.url(path="/elsewhere")})

    receiver.answer = moved
    async with _sender() as sender:
        result = await sender.send(receiver.url(), MESSAGE, b"k")
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert not result.delivered
    assert result.status == 301
    assert "redirects are not followed" in str(result.error)


async def test_an_endless_answer_is_read_no_further_than_kept(receiver: Receiver) -> None:
    written = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse(status=500)
        await response.prepare(request)
        chunk = b"x" * 65536
        while written < 64 * BODY_KEPT:  # far more than is kept; the client hangs up first
            await response.write(chunk)
            written += len(chunk)
        return response

    receiver.answer = endless
    async with _sender() as sender:
        result = await sender.send(receiver.url(), MESSAGE, b"k")
    assert result.status == 500
    assert result.error == "HTTP 500 Internal Server Error: " + "x" * 200


async def test_a_connection_is_kept_for_the_next_attempt(receiver: Receiver) -> None:
    async with _sender() as sender:
        for _ in range(3):
            assert (await sender.send(receiver.url(), MESSAGE, b"k")).delivered
    assert len(set(receiver.client_ports)) == 1


async def test_no_connection_is_a_failure_without_status() -> None:
    (closed_port,) = free_ports(1)  # nothing listens there
    async with _sender() as sender:
        result = await sender.send(f"http://127.0.0.1:{closed_port}/", MESSAGE, b"k")
    assert result.status is None
    assert str(result.error).startswith("connection failed: ")


async def test_no_answer_in_time_is_a_timeout(receiver: Receiver) -> None:
    never = asyncio.Event()

    async def silent(_: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.Response(status=204)

    receiver.answer = silent
    async with _sender(timeout_s=0.2) as sender:
        result = await sender.send(receiver.url(), MESSAGE, b"k")
    assert result.status is None
    assert str(result.error).startswith("timeout (")


async def test_a_receiver_that_never_reads_the_request_is_a_timeout() -> None:
    held: list[asyncio.StreamWriter] = []
    never = asyncio.Event()

    async def deaf(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await never.wait()

    server = await asyncio.start_server(deaf, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    big = WebhookMessage("evt_1", b"x" * (16 * 1024 * 1024), dict(MESSAGE.headers))
    try:
        async with _sender(timeout_s=0.2) as sender:
            result = await sender.send(f"http://127.0.0.1:{port}/", big, b"k")
    finally:
        never.set()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert result.status is None
    assert str(result.error).startswith("timeout (")


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("127.0.0.1", "target refused: 127.0.0.1: a loopback address; refused"),
        ("localhost", "target refused: localhost -> "),
    ],
)
async def test_a_target_the_policy_refuses_gets_no_connection(
    receiver: Receiver, host: str, said: str
) -> None:
    async with _sender(allowed=[]) as sender:
        result = await sender.send(receiver.url(host), MESSAGE, b"k")
    assert result.status is None
    assert str(result.error).startswith(said)
    assert receiver.requests == []


async def test_a_name_keeps_its_host_header_when_its_address_is_allowed(
    receiver: Receiver,
) -> None:
    async with _sender() as sender:
        result = await sender.send(receiver.url("localhost"), MESSAGE, b"k")
    assert result.delivered
    assert receiver.requests[0].host == f"localhost:{receiver.port}"


async def test_each_new_connection_resolves_the_name_again(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding: the name stood for an allowed address, then for an internal one.
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[IpAddress]:
        assert host == "hooks.example"
        return [ipaddress.ip_address(a) for a in next(answers)]

    monkeypatch.setattr(targets, "_resolve", rebinding)

    async def closing(_: web.Request) -> web.StreamResponse:
        return web.Response(status=204, headers={"Connection": "close"})

    receiver.answer = closing
    async with _sender(allowed=["127.0.0.0/8"]) as sender:
        first = await sender.send(receiver.url("hooks.example"), MESSAGE, b"k")
        second = await sender.send(receiver.url("hooks.example"), MESSAGE, b"k")
    assert first.delivered
    assert receiver.requests[0].host == f"hooks.example:{receiver.port}"
    assert second.error == "target refused: hooks.example -> 10.0.0.1: a private address; refused"
    assert len(receiver.requests) == 1
