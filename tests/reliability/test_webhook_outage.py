"""A webhook receiver down for 30 s while events keep coming, then up: every event arrives
afterwards, each subject's in log order, nothing missing (`make test` runs the same scenario
with a 5 s outage: tests/e2e/test_webhooks.py)."""

from __future__ import annotations

import pytest

from tests.e2e.test_webhooks import outage_then_recovery
from tests.e2e.webhooks import webhook_stack
from tests.servers import _Databases

pytestmark = [pytest.mark.reliability, pytest.mark.reliability_long]

OUTAGE_S = 30.0


async def test_receiver_down_for_30_s_then_up(kafka_bootstrap: str, databases: _Databases) -> None:
    async with webhook_stack(kafka_bootstrap, databases.take()) as hooks:
        await outage_then_recovery(hooks, OUTAGE_S, 300)
