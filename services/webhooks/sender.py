"""One attempt at one webhook: the request, and what came of it.

A 2xx answer is a delivery. Anything else is a failed attempt, to be tried again: a
timeout, a connection error, a target refused at connection time, any other status (3xx too:
redirects are not followed; the subscription's URL is what the receiver must fix). A
`Retry-After` on the answer (seconds or an HTTP date) is kept for the wait before the next
attempt. `410 Gone` says the receiver wants no more: the caller pauses the subscription.

The receiver's body is read up to `BODY_KEPT` bytes (so that its connection can be reused,
and its first words explain a failure) and no further.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from .messages import WebhookMessage, signed_headers
from .targets import TargetRefusedError

BODY_KEPT = 16 * 1024
ERROR_BODY_SHOWN = 200


@dataclass(frozen=True)
class Answer:
    status: int | None
    latency_ms: float
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


class WebhookSender:
    """Sends through `session`, whose connector decides where a connection may go and whose
    timeouts bound each attempt (`services.webhooks.app.http_session`)."""

    def __init__(
        self, session: aiohttp.ClientSession, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._session = session
        self._wall_clock = wall_clock

    async def send(self, url: str, message: WebhookMessage, key: bytes) -> Answer:
        headers = signed_headers(message, key, int(self._wall_clock()))
        headers["accept-encoding"] = "identity"  # what is read of the answer stays small
        started = time.perf_counter()
        try:
            # Leaving the block with the body unread closes the connection instead of
            # returning it to the pool, so a receiver's endless answer costs one connection.
            async with self._session.post(
                url, data=message.body, headers=headers, allow_redirects=False
            ) as response:
                kept = b""
                while len(kept) < BODY_KEPT:
                    chunk = await response.content.read(BODY_KEPT - len(kept))
                    if not chunk:
                        break
                    kept += chunk
        except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too
            return Answer(None, _ms(started), f"timeout ({type(exc).__name__})")
        except aiohttp.ClientError as exc:
            return Answer(None, _ms(started), f"connection failed: {_reason(exc)}")
        except TargetRefusedError as exc:
            return Answer(None, _ms(started), f"target refused: {exc}")
        latency = _ms(started)
        status = response.status
        if 200 <= status < 300:
            return Answer(status, latency)
        text = kept[:ERROR_BODY_SHOWN].decode("utf-8", "replace").strip()
        error = f"HTTP {status} {response.reason or ''}".strip()
        if 300 <= status < 400:
            error += " (redirects are not followed: give the final URL)"
        elif text:
            error += f": {text}"
        return Answer(status, latency, error, _retry_after(response.headers, self._wall_clock()))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    value = headers.get("retry-after")  # aiohttp's headers ignore case
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.fromtimestamp(now, UTC)).total_seconds())
