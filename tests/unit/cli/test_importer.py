"""An import run against a sink that records what it is sent: batching, refusals, memory."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import pytest

from services.cli.importers.datasets import Gdelt, Icews
from services.cli.importers.events import Skipped
from services.cli.importers.reading import TabFile
from services.cli.importers.run import DryRun, Importer
from services.cli.ingest_client import BatchAccepted, BatchRefused, BatchResult
from services.cli.render import import_summary

from .reference import GDELT2, ICEWS, extract

pytestmark = pytest.mark.unit


class RecordingSink:
    """Accepts every batch (or refuses those listed), keeping what it was sent."""

    def __init__(self, refuse: Sequence[int] = ()) -> None:
        self.batches: list[list[dict[str, object]]] = []
        self._refuse = set(refuse)

    def send(self, payloads: Sequence[bytes]) -> BatchResult:
        self.batches.append([json.loads(p) for p in payloads])
        number = len(self.batches)
        if number in self._refuse:
            return BatchRefused(409, "409 Conflict: an event was accepted with other content")
        return BatchAccepted(len(payloads), f"chancery.events@0:{number * 10}", None)


def test_batches_hold_at_most_the_limit_and_never_split_a_row() -> None:
    sink = RecordingSink()
    report = Importer(Icews(), sink, max_events=100).run([ICEWS])
    assert all(len(batch) <= 100 for batch in sink.batches)
    for batch in sink.batches:
        coded = [e for e in batch if e["type"] == "diplomacy.event.coded"]
        # a derived event follows the coded event of its row, in the same batch
        assert batch[0]["type"] == "diplomacy.event.coded"
        assert coded
    assert report.rows_read == 3705
    assert report.rows_imported == 1932
    assert sum(len(b) for b in sink.batches) == sum(report.events_accepted.values()) == 2207
    assert report.events_new is None  # the sink did not say which were new
    assert report.position == f"chancery.events@0:{len(sink.batches) * 10}"


def test_each_derived_event_is_sent_once_per_run() -> None:
    sink = RecordingSink()
    Importer(Icews(), sink).run([ICEWS])
    ids = [e["id"] for batch in sink.batches for e in batch]
    assert len(ids) == len(set(ids))


def test_a_refused_batch_is_reported_and_the_rest_still_imported() -> None:
    sink = RecordingSink(refuse=[2])
    report = Importer(Gdelt(), sink, max_events=200).run([GDELT2])
    refused_rows = sum(1 for e in sink.batches[1] if e["type"] == "diplomacy.event.coded")
    assert report.rows_refused == refused_rows > 0
    assert report.rows_imported == 453 - refused_rows
    (refusal,) = report.refusals
    assert "gdelt2_export_20191024143000.tsv" in refusal
    assert "refused by ingest: 409 Conflict" in refusal
    assert "REFUSED" in import_summary(report)


def test_skipped_rows_are_counted_and_reported_one_by_one() -> None:
    skipped: list[tuple[str, int, Skipped]] = []
    report = Importer(
        Gdelt(), DryRun(), dry_run=True, on_skip=lambda f, n, s: skipped.append((f, n, s))
    ).run([GDELT2])
    assert report.rows_skipped == len(skipped) == 1658
    assert report.skipped == {"one_sided": 705, "no_actor": 832, "same_actor": 121}
    assert skipped[0][1] == 1  # line numbers are the file's own


def test_progress_reaches_the_whole_file(tmp_path: Path) -> None:
    plain = extract(GDELT2, tmp_path)
    seen: list[tuple[int, int]] = []
    Importer(
        Gdelt(), DryRun(), dry_run=True, on_progress=lambda f, d, t, r: seen.append((d, t))
    ).run([plain])
    assert seen[-1] == (plain.stat().st_size, plain.stat().st_size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_the_summary_prints_exact_counts() -> None:
    report = Importer(Gdelt(), DryRun(), dry_run=True).run([GDELT2])
    text = import_summary(report)
    assert "rows read            2,111" in text
    assert "rows to import         453" in text
    assert "rows skipped         1,658" in text
    assert "one side has no actor at all" in text
    assert "(453 event.coded, 15 meeting.held)" in text


def _big_gdelt(tmp_path: Path, copies: int) -> Path:
    """The reference batch repeated `copies` times, with distinct GLOBALEVENTIDs."""
    with TabFile(GDELT2) as file:
        lines = ["\t".join(line.fields) for line in file.lines()]
    path = tmp_path / f"big-{copies}.tsv"
    with path.open("w", encoding="utf-8") as out:
        for copy in range(copies):
            for line in lines:
                event_id, rest = line.split("\t", 1)
                out.write(f"{int(event_id) + copy * 10_000_000}\t{rest}\n")
    return path


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Peak memory for a file 4 times larger stays the same: rows are streamed, and only
    one batch is ever held. Both files exceed one batch."""

    def peak(path: Path) -> int:
        sink = DryRun()
        tracemalloc.start()
        try:
            Importer(Gdelt(), sink, dry_run=True, max_events=200).run([path])
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(_big_gdelt(tmp_path, 1))  # warm the lookup tables (pycountry, CAMEO) first
    small = peak(_big_gdelt(tmp_path, 2))
    large = peak(_big_gdelt(tmp_path, 8))
    assert large < small * 1.25, (small, large)
