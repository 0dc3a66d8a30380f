"""Sending batches of events to ingest's batch endpoint, as a well-behaved client.

- A batch is all or nothing on ingest's side. Refused as a whole (409 conflict, 413 too
  large, 422 invalid), it is returned as `BatchRefused` for the caller to report.
- 503 (Kafka or Redis unavailable) and 502/504/429 are retried (tenacity), waiting as long
  as `Retry-After` says when it says, else with exponential backoff and jitter; transport
  failures (connection lost, timeout) likewise. Retrying is safe: ingest is idempotent on
  (source, id), and after a 503 "the same request appends only what is missing". Rather
  than wait past `retry_for_s` in all, `ServiceDown`.
- 401/403: the key is wrong for every batch: `CliError` at once.

`transport` is httpx's port: tests pass an `httpx.MockTransport`, and a `sleep` that only
records how long it was asked to wait.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from chancery.positions import InvalidPositionError, Position
from services.platform.retrying import (
    ServerDelayOrBackoff,
    StopBeforeWaitingLongerThan,
    TryAgainLater,
    failure_of,
)

from .errors import CliError, ServiceDown, problem_detail, transport_reason

logger = logging.getLogger(__name__)

BATCH_PATH = "/v1/events/batch"
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0


@dataclass(frozen=True)
class BatchAccepted:
    events: int
    position: str | None
    new: int | None = None
    """Events appended by this request (ingest's `Chancery-Appended` header)."""


@dataclass(frozen=True)
class BatchRefused:
    status: int
    message: str


BatchResult = BatchAccepted | BatchRefused


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delay, 0.0), MAX_RETRY_AFTER_S)


class IngestClient:
    """POSTs batches to ingest. Use as a context manager (it owns an httpx client)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 60.0,
        retry_for_s: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            transport=transport,
        )
        self._retry_for_s = retry_for_s
        self._sleep = sleep
        self._on_wait = on_wait or (lambda message: logger.warning("%s", message))

    def __enter__(self) -> IngestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def check_reachable(self) -> None:
        """Fail fast, before reading any file, when nothing answers at the URL."""
        try:
            self._client.get("/healthz", timeout=5.0)
        except httpx.TransportError as exc:
            raise ServiceDown("ingest", self.base_url, transport_reason(exc)) from None

    def send(self, payloads: Sequence[bytes]) -> BatchResult:
        """POST one batch (each payload one event's JSON); retry what can be retried."""
        body = b"[" + b",".join(payloads) + b"]"
        retrying = Retrying(
            retry=retry_if_exception_type(TryAgainLater),
            wait=ServerDelayOrBackoff(first_s=FIRST_BACKOFF_S, longest_s=MAX_BACKOFF_S),
            stop=StopBeforeWaitingLongerThan(self._retry_for_s),
            sleep=self._sleep,
            before_sleep=self._announce_retry,
            retry_error_callback=self._give_up,
        )
        return retrying(self._post, body, len(payloads))

    def _post(self, body: bytes, events: int) -> BatchResult:
        """One attempt: the answer, or `TryAgainLater` for what is worth retrying."""
        try:
            response = self._client.post(
                BATCH_PATH, content=body, headers={"Content-Type": BATCH_MEDIA_TYPE}
            )
        except httpx.TransportError as exc:
            raise TryAgainLater(transport_reason(exc)) from None
        if response.status_code == 202:
            return _accepted(response, events)
        if response.status_code in {401, 403}:
            raise CliError(
                f"ingest at {self.base_url} refused the API key "
                f"({response.status_code}): {problem_detail(response)}"
            )
        if response.status_code in RETRY_STATUSES:
            raise TryAgainLater(
                f"{response.status_code}: {problem_detail(response)}",
                after_s=retry_after_s(response.headers.get("retry-after")),
            )
        return BatchRefused(response.status_code, _refusal(response))

    def _announce_retry(self, retry_state: RetryCallState) -> None:
        self._on_wait(
            f"ingest: {_reason(retry_state)}; retrying in {retry_state.upcoming_sleep:.1f} s"
        )

    def _give_up(self, retry_state: RetryCallState) -> BatchResult:
        raise ServiceDown(
            "ingest",
            self.base_url,
            f"still failing after {retry_state.idle_for:.0f} s ({_reason(retry_state)})",
        )


def _reason(retry_state: RetryCallState) -> str:
    failure = failure_of(retry_state)
    return failure.reason if isinstance(failure, TryAgainLater) else repr(failure)


def merge_positions(a: str | None, b: str | None) -> str | None:
    """The position covering both tokens (the larger offset per partition)."""
    if a is None or b is None:
        return a or b
    try:
        return Position.parse(a).merge(Position.parse(b)).token()
    except (InvalidPositionError, ValueError):
        return b


def _accepted(response: httpx.Response, count: int) -> BatchAccepted:
    try:
        body = response.json()
    except ValueError:
        return BatchAccepted(count, None)
    if not isinstance(body, dict):
        return BatchAccepted(count, None)
    position = body.get("position")
    appended = response.headers.get("chancery-appended", "")
    new = int(appended) if appended.isdigit() else None
    return BatchAccepted(count, position if isinstance(position, str) else None, new)


def _refusal(response: httpx.Response) -> str:
    """The problem's detail and its first few per-event errors, on one line."""
    message = f"{response.status_code} {response.reason_phrase}: {problem_detail(response)}"
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list) and errors:
        shown = []
        for error in errors[:3]:
            if isinstance(error, dict):
                where = error.get("index", "?")
                what = error.get("message") or error.get("msg") or error
                field = error.get("field")
                shown.append(f"#{where}{' ' + str(field) if field else ''}: {what}")
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        message += " [" + "; ".join(shown) + more + "]"
    return message
