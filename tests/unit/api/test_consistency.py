"""Read-your-writes, positions and lag in every answer, and rebuilds: 503, 504, 422."""

from __future__ import annotations

import asyncio

import pytest

from chancery.positions import Position
from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.api.conftest import ApiFactory
from tests.unit.domain.builders import meeting

pytestmark = pytest.mark.unit


async def test_every_answer_says_which_position_it_reflects_and_the_lag(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    position = twin.append(meeting("pending", "2023-05-11", "CHN", "USA"), apply=False)
    async with api() as client:
        response = await client.get("/v1/relations/CHN/USA")
    reflected = Position.parse(response.headers["Chancery-Position"])
    assert response.json()["position"] == reflected.token()
    assert not position.is_covered_by(dict(reflected.offsets))
    assert response.headers["Chancery-Lag"] == "1"
    assert response.headers["Chancery-Read-Model-Version"] == "1"


async def test_min_position_waits_for_the_projector(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    position = twin.append(meeting("mine", "2023-05-11", "CHN", "USA"), apply=False)

    async def projector_catches_up() -> None:
        await asyncio.sleep(0.1)
        twin.apply_all()

    async with api(min_position_wait_s=2.0) as client:
        before = (await client.get("/v1/relations/CHN/USA")).json()["event_count"]
        catching_up = asyncio.create_task(projector_catches_up())
        response = await client.get(
            "/v1/relations/CHN/USA", params={"min_position": position.token()}
        )
        await catching_up
    assert response.status_code == 200
    assert response.json()["event_count"] == before + 1
    assert position.is_covered_by(dict(Position.parse(response.headers["Chancery-Position"])))


async def test_the_header_is_the_same_as_the_parameter(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    position = twin.append(meeting("mine", "2023-05-11", "CHN", "USA"))
    async with api() as client:
        response = await client.get(
            "/v1/events/mine", headers={"Chancery-Min-Position": position.token()}
        )
    assert response.status_code == 200


async def test_a_position_not_applied_in_time_is_a_504_not_a_stale_answer(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    position = twin.append(meeting("stuck", "2023-05-11", "CHN", "USA"), apply=False)
    async with api(min_position_wait_s=0.2) as client:
        response = await client.get(
            "/v1/relations/CHN/USA", headers={"Chancery-Min-Position": position.token()}
        )
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 504
    body = response.json()
    assert body["min_position"] == position.token()
    assert body["lag"] == 1
    assert "retry" in body["detail"]
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Chancery-Position"] == body["position"]
    assert "chancery_api_min_position_timeouts_total 1.0" in metrics


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("nope", "must look like"),
        ("other.topic@0:1", "not 'chancery.events'"),
        ("chancery.events@6:0", "partition 6 does not exist"),
        ("chancery.events@0:1,0:2", "appears twice"),
    ],
)
async def test_a_bad_min_position_is_a_422(api: ApiFactory, token: str, says: str) -> None:
    async with api() as client:
        response = await client.get("/v1/relations/CHN/USA", params={"min_position": token})
    assert response.status_code == 422
    assert says in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/relations/CHN/USA",
        "/v1/relations?country=CHN",
        "/v1/countries/CHN/timeline",
        "/v1/relations/CHN/USA/timeline",
        "/v1/itineraries/li-hui",
        "/v1/visits?country=UKR",
        "/v1/people/li-hui",
        "/v1/events/li-hui-named-envoy",
        "/v1/stream",
    ],
)
async def test_while_the_read_models_are_rebuilt_every_read_is_503(
    api: ApiFactory, twin: InMemoryReadModelReader, path: str
) -> None:
    twin.state = "building"
    async with api() as client:
        response = await client.get(path)
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert "being rebuilt" in body["detail"]
    assert body["rebuilding"]["state"] == "building"
    assert body["rebuilding"]["total"] == 19
    assert len(body["rebuilding"]["partitions"]) == 6
    assert ready.status_code == 503


async def test_with_no_version_at_all_reads_are_503_too(
    api: ApiFactory, twin: InMemoryReadModelReader
) -> None:
    twin.state = "missing"
    async with api() as client:
        response = await client.get("/v1/relations/CHN/USA")
        healthy = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["rebuilding"]["version"] is None
    assert healthy.status_code == 200
