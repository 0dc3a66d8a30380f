"""One attempt, through httpx's MockTransport: what counts as delivered, what is kept of a
failure, Retry-After in both forms, and no redirect followed."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from services.webhooks.messages import WebhookMessage
from services.webhooks.sender import WebhookSender

pytestmark = pytest.mark.unit

MESSAGE = WebhookMessage("evt_0", b"{}", {"content-type": "application/cloudevents+json"})
NOW = 1_700_000_000.0


def _sender(handler: httpx.MockTransport) -> WebhookSender:
    return WebhookSender(httpx.AsyncClient(transport=handler), wall_clock=lambda: NOW)


async def test_a_2xx_is_delivered_and_the_request_is_signed() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    result = await _sender(httpx.MockTransport(answer)).send("https://r.example/", MESSAGE, b"k")
    assert result.delivered
    assert seen[0].headers["webhook-id"] == "evt_0"
    assert seen[0].headers["webhook-timestamp"] == str(int(NOW))
    assert seen[0].headers["webhook-signature"].startswith("v1,")


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
    retry_after: str, seconds: float | None
) -> None:
    transport = httpx.MockTransport(
        lambda _: httpx.Response(429, headers={"Retry-After": retry_after}, text="slow down")
    )
    result = await _sender(transport).send("https://r.example/", MESSAGE, b"k")
    assert not result.delivered
    assert result.status == 429
    assert result.error == "HTTP 429 Too Many Requests: slow down"
    assert result.retry_after_s == seconds


async def test_a_redirect_is_a_failure_not_followed() -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(301, headers={"Location": "http://10.0.0.1/"})

    result = await _sender(httpx.MockTransport(answer)).send("https://r.example/", MESSAGE, b"k")
    assert calls == ["https://r.example/"]
    assert not result.delivered
    assert "redirects are not followed" in str(result.error)


@pytest.mark.parametrize(
    ("failure", "said"),
    [(httpx.ConnectError("refused"), "connection failed"), (httpx.ReadTimeout("slow"), "timeout")],
)
async def test_no_answer_is_a_failure_without_status(failure: Exception, said: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise failure

    result = await _sender(httpx.MockTransport(answer)).send("https://r.example/", MESSAGE, b"k")
    assert result.status is None
    assert str(result.error).startswith(said)
