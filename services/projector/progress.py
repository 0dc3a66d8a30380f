"""Progress as `chancery rebuild` shows it: events applied of those in the log, rate, ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .ownership import Ownership

PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class Progress:
    applied: int  # events done (offsets covered) across partitions
    total: int  # events in the log across partitions (high watermarks)
    rate: float = 0.0  # events per second since the run started
    eta_s: float | None = None  # at that rate, seconds until `total`


class ProgressReport:
    """Hands `on_progress` a `Progress` at most every `PROGRESS_EVERY_S` (or when forced);
    the rate counts from the first report, when the starting positions are known."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self._on_progress = on_progress
        self._last = 0.0
        self._started = 0.0
        self._applied_at_start: int | None = None

    def report(self, ownership: Ownership, *, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        applied, total = ownership.counts()
        if self._applied_at_start is None:
            self._applied_at_start = applied
            self._started = now
        elapsed = now - self._started
        rate = (applied - self._applied_at_start) / elapsed if elapsed > 0 else 0.0
        eta = (total - applied) / rate if rate > 0 else None
        self._on_progress(Progress(applied=applied, total=total, rate=rate, eta_s=eta))
