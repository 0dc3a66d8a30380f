"""An import run: stream each file's rows, map them, send the events in batches, count.

Memory is bounded by one batch: rows are read one at a time and a batch is sent as soon as
it holds `max_events` events or `max_bytes` of JSON. A row's events (its coded event and
what it derives) always travel in the same batch, so a row is imported or refused whole.

Sending goes through a `Sink` (the real one wraps `IngestClient`; `DryRun` sends nothing),
and progress goes to a callback: this module knows nothing of HTTP or terminals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cachetools import LRUCache

from chancery.contract import encode_event
from services.cli.ingest_client import BatchAccepted, BatchRefused, BatchResult, merge_positions

from .datasets import Dataset
from .events import Mapped, Skipped, SkipReason
from .reading import TabFile

MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 3 * 1024 * 1024
"""Below ingest's default body limit (4 MiB), whatever the rows hold."""
RECENT_DERIVED = 100_000
"""How many derived event ids a run remembers, to send each derived event once (bounded)."""


class Sink(Protocol):
    def send(self, payloads: Sequence[bytes]) -> BatchResult: ...


class DryRun:
    """Accepts everything, sends nothing: `--dry-run` counts what an import would send."""

    def send(self, payloads: Sequence[bytes]) -> BatchResult:
        return BatchAccepted(len(payloads), None)


@dataclass
class ImportReport:
    dataset: str
    dry_run: bool = False
    files: int = 0
    rows_read: int = 0
    rows_imported: int = 0
    """Rows whose events ingest accepted (new, or already in the log)."""
    rows_refused: int = 0
    """Rows in batches ingest refused as a whole."""
    skipped: Counter[SkipReason] = field(default_factory=Counter)
    events_accepted: Counter[str] = field(default_factory=Counter)
    """Events accepted, by type."""
    events_new: int | None = 0
    """Events appended to the log, when ingest says (None when it does not)."""
    refusals: list[str] = field(default_factory=list)
    position: str | None = None

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())


ProgressCallback = Callable[[str, int, int, int], None]
"""(file name, bytes done, bytes in all, rows read) after each row."""
SkipCallback = Callable[[str, int, Skipped], None]
"""(file name, line number, why) for each skipped row."""


@dataclass
class _Batch:
    file_name: str
    payloads: list[bytes] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    derived_ids: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    first_line: int = 0
    last_line: int = 0


class Importer:
    def __init__(
        self,
        dataset: Dataset,
        sink: Sink,
        *,
        dry_run: bool = False,
        max_events: int = MAX_BATCH_EVENTS,
        max_bytes: int = MAX_BATCH_BYTES,
        on_progress: ProgressCallback | None = None,
        on_skip: SkipCallback | None = None,
    ) -> None:
        if not 2 <= max_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"a batch holds 2 to {MAX_BATCH_EVENTS} events")
        self.dataset = dataset
        self.report = ImportReport(dataset.name, dry_run=dry_run)
        self._sink = sink
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._on_progress = on_progress
        self._on_skip = on_skip
        self._recent: LRUCache[str, bool] = LRUCache(maxsize=RECENT_DERIVED)

    def check(self, paths: Iterable[Path]) -> None:
        """Check every file's layout before anything is sent (raises LayoutError)."""
        for path in paths:
            self.dataset.check(path)

    def run(self, paths: Sequence[Path]) -> ImportReport:
        """Import every file in turn (`check` them first: a bad file raises midway)."""
        for path in paths:
            self._import_file(path)
        return self.report

    def _import_file(self, path: Path) -> None:
        report = self.report
        with TabFile(path) as file:
            batch = _Batch(file.name)
            done = 0
            for line, outcome in self.dataset.rows(file.lines(), str(path)):
                report.rows_read += 1
                done += line.size
                if isinstance(outcome, Skipped):
                    report.skipped[outcome.reason] += 1
                    if self._on_skip:
                        self._on_skip(file.name, line.number, outcome)
                else:
                    batch = self._add(batch, line.number, outcome)
                if self._on_progress:
                    self._on_progress(file.name, done, file.size, report.rows_read)
            self._flush(batch)
            if self._on_progress:
                self._on_progress(file.name, file.size, file.size, report.rows_read)
        report.files += 1

    def _fresh(self, event_id: str) -> bool:
        """False for a derived event this run already sent (ingest would drop it anyway)."""
        if self._recent.get(event_id):  # a hit counts as a use: it stays longer
            return False
        self._recent[event_id] = True
        return True

    def _add(self, batch: _Batch, line_number: int, mapped: Mapped) -> _Batch:
        events = [mapped.coded, *(e for e in mapped.derived if self._fresh(e.id))]
        payloads = [encode_event(event) for event in events]
        size = sum(len(p) + 1 for p in payloads)
        if batch.rows and (
            len(batch.payloads) + len(payloads) > self._max_events
            or batch.bytes + size > self._max_bytes
        ):
            self._flush(batch)
            batch = _Batch(batch.file_name)
        if not batch.rows:
            batch.first_line = line_number
        batch.payloads.extend(payloads)
        batch.types.extend(event.type for event in events)
        batch.derived_ids.extend(event.id for event in events[1:])
        batch.rows += 1
        batch.bytes += size
        batch.last_line = line_number
        return batch

    def _flush(self, batch: _Batch) -> None:
        if not batch.rows:
            return
        report = self.report
        result = self._sink.send(batch.payloads)
        if isinstance(result, BatchRefused):
            for event_id in batch.derived_ids:  # not sent after all: a later row may send it
                self._recent.pop(event_id, None)
            report.rows_refused += batch.rows
            report.refusals.append(
                f"{batch.file_name} lines {batch.first_line}-{batch.last_line} "
                f"({batch.rows} rows, {len(batch.payloads)} events) refused by ingest: "
                f"{result.message}"
            )
            return
        report.rows_imported += batch.rows
        report.events_accepted.update(batch.types)
        if result.new is None or report.events_new is None:
            report.events_new = None
        else:
            report.events_new += result.new
        report.position = merge_positions(report.position, result.position)
