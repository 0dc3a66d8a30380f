"""`chancery status`'s webhook subscriptions: one short row each, within 80 columns."""

from __future__ import annotations

import pytest
from rich.console import Console

from services.cli.render import status
from services.cli.status import Check, PartitionRow, StatusReport, SubscriptionRow

pytestmark = pytest.mark.unit


def test_subscription_rows_fit_80_columns() -> None:
    report = StatusReport(
        topic="chancery.events",
        checks=[Check("deliver", "http://127.0.0.1:8004/status", True, "delivering 2")],
        partitions=[PartitionRow(0, 10, 9, 0)],
        version=1,
        subscriptions=[
            SubscriptionRow("sub_0f3c9a7be21d44c8a0b1", "active", 0, None, "https://a.example/"),
            SubscriptionRow(
                "sub_9a7be21d44c8a0b10f3c",
                "paused",
                12_345,
                "HTTP 500 Internal Server Error: " + "the receiver is failing " * 10,
                "https://b.example/",
            ),
        ],
    )
    console = Console(width=80, record=True, color_system=None)
    for part in status(report):
        console.print(part)
    shown = console.export_text()
    assert all(len(line) <= 80 for line in shown.splitlines())
    rows = [line for line in shown.splitlines() if line.lstrip().startswith("sub_")]
    assert len(rows) == 2
    assert "paused" in rows[1]
    assert "12,345" in rows[1]
    assert "HTTP 500" in rows[1]
