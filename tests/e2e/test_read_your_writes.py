"""Read-your-writes over the real stack: the position ingest returns, passed back as
min_position (query or header), makes the next read include the write; a position the
projector cannot reach in time is a 504, never a stale answer."""

from __future__ import annotations

from typing import Any

import pytest

from chancery.positions import Position
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

SOURCE = "https://wire.example/ryw"
PAIRS = [("CHN", "USA"), ("IRN", "SAU"), ("FRA", "DEU"), ("JPN", "KOR"), ("IND", "PAK")]


def meeting(i: int) -> dict[str, Any]:
    a, b = PAIRS[i % len(PAIRS)]
    return {
        "specversion": "1.0",
        "id": f"ryw-{i}",
        "source": SOURCE,
        "type": "diplomacy.meeting.held",
        "time": "2023-05-12T00:00:00Z",
        "data": {"occurred": f"2023-04-{1 + i % 28:02d}", "parties": [a, b]},
    }


async def test_every_write_is_in_the_next_read(stack: Stack) -> None:
    counts: dict[str, int] = {}
    for i in range(25):
        event = meeting(i)
        pair = "|".join(sorted(event["data"]["parties"]))
        counts[pair] = counts.get(pair, 0) + 1
        position = await stack.post([event])
        a, b = pair.split("|")
        response = await stack.api.get(f"/v1/relations/{a}/{b}", params={"min_position": position})
        assert response.status_code == 200
        body = response.json()
        assert body["event_count"] == counts[pair], i
        reflected = Position.parse(response.headers["Chancery-Position"])
        assert Position.parse(position).is_covered_by(dict(reflected.offsets))
        assert body["position"] == response.headers["Chancery-Position"]
        assert int(response.headers["Chancery-Lag"]) >= 0
        found = await stack.api.get(f"/v1/events/ryw-{i}", params={"min_position": position})
        assert found.status_code == 200


async def test_the_header_does_what_the_query_parameter_does(stack: Stack) -> None:
    position = await stack.post([meeting(100)])
    response = await stack.api.get(
        "/v1/events/ryw-100", headers={"Chancery-Min-Position": position}
    )
    assert response.status_code == 200


async def test_a_position_not_reached_in_time_is_a_504(stack: Stack) -> None:
    beyond = f"{stack.topic}@0:999999999"
    response = await stack.api.get("/v1/relations/CHN/USA", params={"min_position": beyond})
    assert response.status_code == 504
    body = response.json()
    assert body["min_position"] == beyond
    assert Position.parse(body["position"]).topic == stack.topic
    assert "retry" in body["detail"]
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Chancery-Position"] == body["position"]
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "token", ["nonsense", "chancery.other@0:1", "{topic}@6:1", "{topic}@0:-1", "{topic}@"]
)
async def test_a_bad_min_position_is_a_422(stack: Stack, token: str) -> None:
    response = await stack.api.get(
        "/v1/relations/CHN/USA", params={"min_position": token.format(topic=stack.topic)}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "min_position"
