"""The API's failures, mapped to HTTP in this one place.

- the read models are being rebuilt (no version served, or the served one not ready): 503
  with Retry-After and the rebuild's progress; nothing partial is ever answered;
- `min_position` not reached within the wait: 504 (see consistency.py for why not a stale
  answer);
- a stream resume point older than the stream keeps: 410;
- too many open streams for one client: 429 (raised where the slot is taken);
- a webhook subscription that does not exist: 404; a target URL refused (not http(s), not a
  public address, not resolvable): 422 naming `url`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.platform.web import Problem
from services.webhooks.targets import TargetRefusedError

from .reader import NotReadyError, PositionTimeoutError, ReadError, StreamGoneError
from .representation import position_headers


class SubscriptionNotFoundError(Exception):
    """No webhook subscription has this id."""

    def __init__(self, subscription_id: str) -> None:
        super().__init__(subscription_id)
        self.subscription_id = subscription_id


def subscription_problem(exc: Exception) -> Problem:
    if isinstance(exc, SubscriptionNotFoundError):
        return Problem(404, "Not Found", f"no subscription {exc.subscription_id}")
    if isinstance(exc, TargetRefusedError):
        return Problem(
            422,
            "Invalid request",
            f"url: {exc}",
            errors=[{"field": "url", "message": str(exc), "type": "target_refused"}],
        )
    raise AssertionError(f"unmapped subscription error {type(exc).__name__}")


@dataclass
class ApiProblem(Problem):
    """A problem with members of its own beside the RFC 9457 ones."""

    extra: Mapping[str, Any] = field(default_factory=dict)

    def body(self, instance: str) -> dict[str, Any]:
        return {**super().body(instance), **self.extra}


def to_problem(exc: ReadError, *, retry_after_s: int) -> Problem:
    if isinstance(exc, NotReadyError):
        applied = sum((p.applied if p.applied is not None else -1) + 1 for p in exc.progress)
        total = sum(p.high_watermark for p in exc.progress)
        if exc.state == "layout":
            detail = (
                f"the served read models (version {exc.version}) are of another layout than "
                'this release reads: run `chancery rebuild` (see the README, "Upgrading")'
            )
        elif exc.state == "building":
            detail = (
                f"the read models are being rebuilt (version {exc.version}): {applied:,} of "
                f"{total:,} events applied; answers resume when every partition has caught up"
            )
        else:
            detail = (
                "the read models are being rebuilt: no version is served yet (Redis was "
                "emptied or is new); answers resume when the projector has caught up"
            )
        return ApiProblem(
            503,
            "Service Unavailable",
            detail,
            headers={"Retry-After": str(retry_after_s)},
            extra={
                "rebuilding": {
                    "version": exc.version,
                    "state": exc.state,
                    "applied": applied,
                    "total": total,
                    "partitions": [
                        {
                            "partition": p.partition,
                            "applied_offset": p.applied,
                            "high_watermark": p.high_watermark,
                            "lag": p.lag,
                        }
                        for p in exc.progress
                    ],
                }
            },
        )
    if isinstance(exc, PositionTimeoutError):
        return ApiProblem(
            504,
            "Gateway Timeout",
            f"the read models did not reach min_position {exc.wanted.token()} within "
            f"{exc.waited_s:.1f} s (they reflect {exc.reached.position.token()}); the write is "
            "in the log and will become visible: retry the same request",
            headers={**position_headers(exc.reached), "Retry-After": "1"},
            extra={
                "min_position": exc.wanted.token(),
                "position": exc.reached.position.token(),
                "lag": exc.reached.lag,
            },
        )
    if isinstance(exc, StreamGoneError):
        return ApiProblem(
            410,
            "Gone",
            f"the stream of partition {exc.partition} no longer holds the events after offset "
            f"{exc.after} (it keeps them from offset {exc.retained_from}); reconnect without "
            "Last-Event-ID and reload the read models you need",
            extra={"partition": exc.partition, "retained_from": exc.retained_from},
        )
    raise AssertionError(f"unmapped read error {type(exc).__name__}")
