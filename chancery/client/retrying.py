"""How our clients wait between attempts (tenacity strategies): the server's word, else backoff.

A failure that is worth another try is raised as `TryAgainLater`, carrying the delay the
server asked for when it gave one (an HTTP `Retry-After`, an SSE `retry` field). The wait
`ServerDelayOrBackoff` honours that delay exactly, and otherwise backs off exponentially with
jitter, so that clients failing together do not come back together.

The Python client paces every retry with these, and so do the services' own clients
(ingest's Kafka producer restarts).
"""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime

from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential

MAX_RETRY_AFTER_S = 120.0
"""The longest a `Retry-After` is followed: a server asking for more is asked again then."""


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


class TryAgainLater(Exception):
    """A failure worth retrying; `after_s` is how long the server asked us to wait, if it did."""

    def __init__(self, reason: str, *, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after_s = after_s


class ServerDelayOrBackoff(wait_base):
    """The server's delay when the failure carries one (zero asks for nothing: a server
    answering `Retry-After: 0` in a loop would otherwise be asked again at once, for ever);
    else `first_s`, doubling up to `longest_s`, plus up to `first_s` of random jitter (the
    total still at most `longest_s`).

    The exponent counts the attempts of one tenacity retry loop: a caller that starts a new
    loop after a success starts again from `first_s`.
    """

    def __init__(self, *, first_s: float, longest_s: float) -> None:
        self._exponential = wait_exponential(multiplier=first_s, max=longest_s)
        self._jitter_s = first_s
        self._longest_s = longest_s

    def __call__(self, retry_state: RetryCallState) -> float:
        failure = failure_of(retry_state)
        if isinstance(failure, TryAgainLater) and failure.after_s:
            return failure.after_s
        backoff = self._exponential(retry_state) + random.uniform(0, self._jitter_s)  # noqa: S311 - jitter, not a secret
        return min(backoff, self._longest_s)


class StopBeforeWaitingLongerThan(stop_base):
    """Stop when the next wait would bring the time spent waiting past `limit_s`.

    It counts the waits themselves (tenacity's `idle_for`), not the clock: the bound holds
    whatever `sleep` the retrying was given.
    """

    def __init__(self, limit_s: float) -> None:
        self._limit_s = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.idle_for + retry_state.upcoming_sleep > self._limit_s


def failure_of(retry_state: RetryCallState) -> BaseException | None:
    """The exception the last attempt raised (None if it returned)."""
    outcome = retry_state.outcome
    return outcome.exception() if outcome is not None else None
