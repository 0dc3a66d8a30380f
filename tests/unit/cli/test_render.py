"""What `relation`, `itinerary`, `tail` and `status` print, from the bodies the API documents."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console, RenderableType

from services.api.examples import ITINERARY_EXAMPLE, RELATION_EXAMPLE, RELATION_LIST_EXAMPLE
from services.cli.render import event_line, itinerary, relation, status
from services.cli.status import Check, PartitionRow, StatusReport

pytestmark = pytest.mark.unit


def text(renderable: RenderableType) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_a_relation_reads_as_sentences() -> None:
    body: dict[str, Any] = {
        **RELATION_EXAMPLE,
        "as_of": "2025-01-01",
        "score": -3.3,
        "climate": "strained",
        "event_count": 5,
        "quad_counts": {"1": 1, "2": 0, "3": 2, "4": 2},
        "next_contact": None,
    }
    shown = text(relation(body))
    assert "China (CHN) ↔ United States (USA)   as of 2025-01-01" in shown
    assert "status        unknown" in shown
    assert "score         -3.30 (strained)" in shown
    assert (
        "events        5  (verbal cooperation 1, material cooperation 0, verbal conflict 2, "
        "material conflict 2)"
    ) in shown
    assert "last contact  meeting 2023-05-10/2023-05-11" in shown
    assert "next contact  —" in shown


def test_a_partnership_and_a_status_with_its_start() -> None:
    body: dict[str, Any] = {
        **RELATION_LIST_EXAMPLE["items"][0],
        "status": "full",
        "status_since": "2023-03",
        "mediator": "CHN",
    }
    shown = text(relation(body))
    assert "status        full since 2023-03 (mediated by China (CHN))" in shown
    assert "partnership   “no limits” since 2023-05-12" in shown


def test_an_itinerary_lists_each_trip_and_its_legs() -> None:
    shown = text(itinerary(ITINERARY_EXAMPLE))
    assert shown.startswith("Li Hui (li-hui)")
    assert "trip li-hui-ukraine-settlement-2023: announced   planned 2023-W20" in shown
    assert "to help finalize a political settlement of the Ukrainian crisis" in shown
    for country in ("Russian Federation (RUS)", "Ukraine (UKR)", "Poland (POL)"):
        assert country in shown


def test_a_body_with_missing_fields_still_prints() -> None:
    assert "no trips" in text(itinerary({"person_id": "nobody"}))
    assert "status        —" in text(relation({"pair": "CHN|USA"}))


def test_a_stream_event_is_one_line() -> None:
    event = {
        "specversion": "1.0",
        "id": "32891175",
        "source": "https://doi.org/10.7910/DVN/28075",
        "type": "diplomacy.meeting.held",
        "time": "2018-06-01T00:00:00Z",
        "data": {
            "occurred": "2018-06-01",
            "parties": ["PRK", "USA"],
            "participants": [
                {"id": "kim-yong-chol", "name": "Kim Yong-chol", "country": "PRK"},
                {"id": "mike-pompeo", "name": "Mike Pompeo", "country": "USA"},
            ],
            "city": "New York City",
            "country": "USA",
        },
    }
    line = event_line("chancery.events@2:17", json.dumps(event)).plain
    assert line == (
        "2018-06-01   meeting.held           PRK · USA in person (Kim Yong-chol, Mike Pompeo) "
        "in New York City, USA   @chancery.events@2:17"
    )


def test_something_that_is_not_an_event_is_printed_as_it_came() -> None:
    assert event_line(None, '{"hello": 1}').plain == '{"hello":1}'
    assert event_line(None, "plain text").plain == "plain text"


# --- status ----------------------------------------------------------------------------------

STATUS_CHECKS = [
    Check("ingest", "http://127.0.0.1:8001/readyz", True, "kafka ok; redis ok"),
    Check(
        "API",
        "http://127.0.0.1:8002/readyz",
        True,
        "redis ok; read_models ok (version 1, ready)",
    ),
    Check(
        "projector",
        "http://127.0.0.1:8003/status",
        True,
        "version 1, live, ready; holds 6 partition(s), lag 0",
    ),
    Check(
        "Kafka",
        "127.0.0.1:9092",
        True,
        "topic chancery.events: 6 partitions, 2,694 events; 0 dead letter(s) in "
        "chancery.events.dlq",
    ),
    Check(
        "Redis",
        "redis://127.0.0.1:6379/0",
        False,
        "Error 111 connecting to 127.0.0.1:6379. Connection refused. (the read models and "
        "ingest's idempotency records cannot be reached; is redis-server running?)",
    ),
]


def rendered_status(width: int) -> list[str]:
    report = StatusReport(topic="chancery.events", version=1, checks=STATUS_CHECKS)
    report.partitions = [PartitionRow(p, 1_000 * p, 1_000 * p - 1, 0) for p in range(6)]
    console = Console(width=width, record=True, force_terminal=False, highlight=False)
    for part in status(report):
        console.print(part)
    return console.export_text().splitlines()


def test_status_fits_80_columns_and_wraps_between_words() -> None:
    lines = rendered_status(80)
    assert max(len(line) for line in lines) <= 80
    words = {word for check in STATUS_CHECKS for word in f"{check.target} {check.detail}".split()}
    tokens = {token for line in lines for token in line.split()}
    assert words - tokens == set(), "a word was cut across lines"
    # What a part said starts near the left edge, not squeezed into a last narrow column.
    assert max(len(line) - len(line.lstrip()) for line in lines) <= 20
    # Each part's name, state and address share its first line.
    for check in STATUS_CHECKS:
        state = "ok" if check.ok else "DOWN"
        assert any(line.split()[:3] == [check.part, state, check.target] for line in lines)
    assert any(line.split() == ["total", "0"] for line in lines)
