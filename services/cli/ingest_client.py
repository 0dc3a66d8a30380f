"""Sending batches of events to ingest for `import` and `load seeds`: chancery.client posts
them, this module says what each outcome means to an operator.

- A batch is all or nothing on ingest's side. Refused as a whole (409 conflict, 413 too
  large, 422 invalid), it is returned as `BatchRefused` for the caller to report.
- 503 (Kafka or Redis unavailable), 502/504/429 and lost connections are retried by the
  client, after the `Retry-After` ingest sends, else with backoff and jitter; retrying is
  safe (ingest is idempotent on (source, id)). Rather than wait past `retry_for_s` in all,
  `ServiceDown`.
- 401/403: the key is wrong for every batch: `CliError` at once.

`transport` is httpx's port: tests pass an `httpx.MockTransport`, and a `sleep` that only
records how long it was asked to wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from chancery.client import (
    Client,
    Forbidden,
    ProblemError,
    ServiceUnreachable,
    Unauthorized,
    UnexpectedAnswer,
)
from chancery.client.core import RETRY_STATUSES
from chancery.positions import InvalidPositionError, Position

from .errors import CliError, ServiceDown

logger = logging.getLogger(__name__)


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


class IngestClient:
    """POSTs batches to ingest. Use as a context manager (it owns a client)."""

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
        notice = on_wait or (lambda message: logger.warning("%s", message))
        self._client = Client(
            ingest_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            retry_for_s=retry_for_s,
            on_retry=lambda waiting: notice(str(waiting)),
            transport=transport,
            sleep=sleep,
        )

    def __enter__(self) -> IngestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def check_reachable(self) -> None:
        """Fail fast, before reading any file, when nothing answers at the URL."""
        try:
            self._client.ping("ingest")
        except ServiceUnreachable as exc:
            raise ServiceDown("ingest", self.base_url, exc.reason) from None

    def send(self, payloads: Sequence[bytes]) -> BatchResult:
        """POST one batch (each payload one event's JSON); the client retries what may pass."""
        try:
            accepted = self._client.post(list(payloads))
        except (Unauthorized, Forbidden) as exc:
            raise CliError(
                f"ingest at {self.base_url} refused the API key ({exc.status}): {exc.explanation}"
            ) from None
        except (ServiceUnreachable, ProblemError) as exc:
            if isinstance(exc, ProblemError) and exc.status not in RETRY_STATUSES:
                return BatchRefused(exc.status, _refusal(exc))
            raise ServiceDown(
                "ingest", self.base_url, f"still failing after {exc.waited_s:.0f} s ({exc.reason})"
            ) from None
        except UnexpectedAnswer as exc:
            raise CliError(exc.message) from None
        return BatchAccepted(len(payloads), accepted.position, accepted.appended)


def merge_positions(a: str | None, b: str | None) -> str | None:
    """The position covering both tokens (the larger offset per partition)."""
    if a is None or b is None:
        return a or b
    try:
        return Position.parse(a).merge(Position.parse(b)).token()
    except (InvalidPositionError, ValueError):
        return b


def _refusal(problem: ProblemError) -> str:
    """The problem's detail and its first few per-event errors, on one line."""
    phrase = httpx.codes.get_reason_phrase(problem.status)
    message = f"{problem.status} {phrase}: {problem.explanation}"
    errors = problem.errors
    if errors:
        shown = []
        for error in errors[:3]:
            where = error.index if error.index is not None else "?"
            extra = error.model_extra or {}
            what = error.message or extra.get("msg") or error.model_dump(exclude_none=True)
            field = f" {error.field}" if error.field else ""
            shown.append(f"#{where}{field}: {what}")
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        message += " [" + "; ".join(shown) + more + "]"
    return message
