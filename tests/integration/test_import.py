"""`chancery import` run for real: the command and ingest as processes, Kafka and Redis real.

Each test imports a reference file (tests/fixtures/reference) through a real ingest, checks
the counts the command printed and how many records reached the topic, then imports it
again and checks that the same counts are printed and nothing was appended.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chancery.auth import Scope
from services.cli.devkeys import create_key
from services.cli.local import free_port
from tests.unit.cli.reference import GDELT1, GDELT2, ICEWS, extract

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ingest:
    url: str
    env: dict[str, str]  # what a `chancery` process needs to reach it with a key


@pytest.fixture
def ingest(chancery_env: dict[str, str], tmp_path: Path) -> Iterator[Ingest]:
    """`python -m services.ingest` on a free port, on this test's topic and database."""
    port = free_port()
    keys = tmp_path / "api-keys.json"
    key = create_key(keys, "importer", [Scope.EVENTS_WRITE])
    env = {
        **os.environ,
        **chancery_env,
        "CHANCERY_INGEST_PORT": str(port),
        "CHANCERY_API_KEYS_FILE": str(keys),
        "CHANCERY_LOG_JSON": "false",
        "CHANCERY_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "ingest.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.ingest"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "ingest.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ingest did not become ready"
            time.sleep(0.1)
        yield Ingest(url, {**env, "CHANCERY_INGEST_URL": url, "CHANCERY_KEY": key})
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def chancery(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def records_in(bootstrap: str, topic: str) -> int:
    """How many records the topic holds (sum of end offsets; nothing is ever deleted)."""
    from services.cli.status import gather

    report = asyncio.run(
        gather(
            ingest_url="http://127.0.0.1:1",
            api_url="http://127.0.0.1:1",
            projector_url="http://127.0.0.1:1",
            kafka_bootstrap=bootstrap,
            redis_url="redis://127.0.0.1:1/0",
            topic=topic,
            dead_letter_topic=f"{topic}.dlq",
        )
    )
    kafka = next(check for check in report.checks if check.part == "Kafka")
    assert kafka.ok, kafka.detail
    return sum(row.log_end or 0 for row in report.partitions)


def counts(output: str) -> dict[str, int]:
    """The summary's counts: label -> number ("rows read" -> 2111, "events accepted" -> ...)."""
    found: dict[str, int] = {}
    for line in output.splitlines():
        match = re.match(r"^\s+([a-z][a-z .,-]+?)\s{2,}([\d,]+)\b", line)
        if match:
            found[match[1]] = int(match[2].replace(",", ""))
    return found


GDELT_COUNTS = {
    "rows read": 2111,
    "rows imported": 453,
    "rows skipped": 1658,
    "one side has no actor at all": 705,
    "one side is not a state or a known organisation": 832,
    "the same state or organisation on both sides": 121,
    "events accepted": 468,
}
ICEWS_COUNTS = {
    "rows read": 3705,
    "rows imported": 1932,
    "rows skipped": 1773,
    "one side is not a state or a known organisation": 175,
    "the same state or organisation on both sides": 1598,
    "events accepted": 2207,
}


@pytest.mark.parametrize(
    ("dataset", "fixture", "expected", "by_type"),
    [
        ("gdelt", GDELT2, GDELT_COUNTS, "(453 event.coded, 15 meeting.held)"),
        (
            "icews",
            ICEWS,
            ICEWS_COUNTS,
            "(1,932 event.coded, 227 meeting.held, 48 visit.leg.started)",
        ),
    ],
)
def test_import_then_import_again_changes_nothing(
    dataset: str,
    fixture: Path,
    expected: dict[str, int],
    by_type: str,
    ingest: Ingest,
    kafka_bootstrap: str,
    kafka_topic: str,
    tmp_path: Path,
) -> None:
    path = extract(fixture, tmp_path)
    assert records_in(kafka_bootstrap, kafka_topic) == 0

    first = chancery("import", dataset, str(path), "--batch-size", "500", env=ingest.env)
    assert first.returncode == 0, first.stderr
    all_new = {**expected, "events new": expected["events accepted"]}
    assert counts(first.stdout) == all_new, first.stdout
    assert by_type in first.stdout
    assert re.search(rf"position\s+{re.escape(kafka_topic)}@\d+:\d+", first.stdout)
    appended = records_in(kafka_bootstrap, kafka_topic)
    assert appended == expected["events accepted"]

    again = chancery("import", dataset, str(path), env=ingest.env)
    assert again.returncode == 0, again.stderr
    assert counts(again.stdout) == {**expected, "events new": 0}, again.stdout
    assert records_in(kafka_bootstrap, kafka_topic) == appended  # nothing new


def test_a_batch_ingest_refuses_is_reported(
    ingest: Ingest, kafka_bootstrap: str, kafka_topic: str, tmp_path: Path
) -> None:
    original = extract(GDELT2, tmp_path)
    first = chancery("import", "gdelt", str(original), env=ingest.env)
    assert first.returncode == 0, first.stderr
    before = records_in(kafka_bootstrap, kafka_topic)

    # The same GLOBALEVENTID with other content (NumMentions): ingest answers 409 for its batch.
    lines = original.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = lines[58].split("\t")  # 881990890, USA 040 CHN: a mapped row
    assert fields[0] == "881990890"
    fields[31] = str(int(fields[31]) + 1)
    lines[58] = "\t".join(fields)
    edited = tmp_path / "edited.tsv"
    edited.write_text("".join(lines), encoding="utf-8")

    second = chancery("import", "gdelt", str(edited), "--batch-size", "100", env=ingest.env)
    assert second.returncode == 1
    found = counts(second.stdout)
    assert found["rows refused"] > 0
    assert found["rows imported"] + found["rows refused"] == 453
    refused = [line for line in second.stdout.splitlines() if line.startswith("  REFUSED")]
    assert len(refused) == 1, second.stdout
    assert "edited.tsv lines" in refused[0]
    assert "409 Conflict" in refused[0]
    assert second.stderr.strip() == "chancery: ingest refused 1 batch(es): see REFUSED above"
    assert records_in(kafka_bootstrap, kafka_topic) == before


def test_gdelt_1_is_refused_and_nothing_is_sent(
    ingest: Ingest, kafka_bootstrap: str, kafka_topic: str, tmp_path: Path
) -> None:
    path = extract(GDELT1, tmp_path)
    result = chancery("import", "gdelt", str(path), env=ingest.env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"chancery: {path}: 58 columns: this is a GDELT 1.0 events file; "
        "`chancery import gdelt` takes GDELT 2.0 export files (61 columns)"
    )
    assert records_in(kafka_bootstrap, kafka_topic) == 0


def test_load_seeds_twice_appends_once(
    ingest: Ingest, kafka_bootstrap: str, kafka_topic: str
) -> None:
    seeds = [line for line in (ROOT / "seeds" / "article.jsonl").read_text().splitlines() if line]
    first = chancery("load", "seeds", env=ingest.env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"{len(seeds)} events from 1 file(s); position {kafka_topic}@")
    assert records_in(kafka_bootstrap, kafka_topic) == len(seeds)
    again = chancery("load", "seeds", env=ingest.env)
    assert again.returncode == 0, again.stderr
    assert records_in(kafka_bootstrap, kafka_topic) == len(seeds)
