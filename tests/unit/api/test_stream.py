"""The SSE stream over the in-memory twin, served by uvicorn on a loopback port (httpx's
ASGI transport buffers whole bodies, so a stream needs a real server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from chancery.positions import Position
from chancery.settings import ApiSettings
from services.api.app import create_app
from tests.e2e.conftest import serve
from tests.e2e.sse import Subscriber
from tests.twins.read_models import InMemoryReadModelReader
from tests.unit.api.conftest import NOON, Keys
from tests.unit.domain.builders import coded, meeting

pytestmark = pytest.mark.unit


@asynccontextmanager
async def server(
    twin: InMemoryReadModelReader, keys: Keys, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        ApiSettings(**{"stream_ping_s": 0.1, **settings}),
        reader=twin,
        authenticator=keys.authenticator,
        clock=lambda: NOON,
    )
    async with (
        serve(app) as url,
        httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {keys.read}"},
            timeout=httpx.Timeout(10, read=None),
        ) as client,
    ):
        yield client


@asynccontextmanager
async def subscribe(client: httpx.AsyncClient, **kwargs: Any) -> AsyncIterator[Subscriber]:
    async with client.stream("GET", "/v1/stream", **kwargs) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        subscriber = Subscriber(response)
        try:
            yield subscriber
        finally:
            await subscriber.close()


def event_ids(messages: list[Any]) -> list[str]:
    return [json.loads(m.data)["id"] for m in messages]


async def test_from_now_then_resumed_with_no_gap_and_no_duplicate(
    twin: InMemoryReadModelReader, keys: Keys
) -> None:
    async with server(twin, keys) as client:
        async with subscribe(client) as first:
            opening = await first.next()
            assert opening.id == (await twin.snapshot()).position.token()
            sent = [meeting(f"m{i}", "2023-05-11", "CHN", "USA") for i in range(3)]
            sent += [coded(f"c{i}", "2023-05-11", "IRN", "SAU", "042") for i in range(3)]
            twin.extend(sent)
            got = await first.events(2)
            resume = first.last_id
        twin.extend(meeting(f"later{i}", "2023-05-11", "FRA", "DEU") for i in range(2))
        async with subscribe(client, headers={"Last-Event-ID": resume or ""}) as second:
            rest = await second.events(6)
            assert await second.quiet_for(0.3) == []
    delivered = event_ids(got) + event_ids(rest)
    assert sorted(delivered) == sorted([e.id for e in sent] + ["later0", "later1"])
    assert len(set(delivered)) == 8


async def test_filters_and_pings_that_carry_the_position(
    twin: InMemoryReadModelReader, keys: Keys
) -> None:
    async with (
        server(twin, keys) as client,
        subscribe(client, params={"type": "meeting.held", "country": "fra"}) as subscriber,
    ):
        await subscriber.next()
        twin.extend(coded(f"c{i}", "2023-05-11", "FRA", "DEU", "042") for i in range(3))
        twin.append(meeting("m-usa", "2023-05-11", "CHN", "USA"))
        position = twin.append(meeting("m-fra", "2023-05-11", "FRA", "DEU"))
        (only,) = await subscriber.events(1)
        assert json.loads(only.data or "")["id"] == "m-fra"
        assert position.is_covered_by(dict(Position.parse(only.id or "").offsets))
        later = twin.append(coded("c-late", "2023-05-11", "FRA", "DEU", "042"))
        while True:  # a ping brings the id past the filtered-out event
            message = await subscriber.next(2)
            assert message.data is None
            if message.id and later.is_covered_by(dict(Position.parse(message.id).offsets)):
                assert "ping" in message.comments
                break


async def test_too_many_streams_for_one_client_is_a_429(
    twin: InMemoryReadModelReader, keys: Keys
) -> None:
    async with (
        server(twin, keys, max_streams_per_client=2) as client,
        subscribe(client),
        subscribe(client),
    ):
        refused = await client.get("/v1/stream")
        metrics = (await client.get("/metrics")).text
    assert refused.status_code == 429
    assert "2 streams" in refused.json()["detail"]
    assert "chancery_api_streams_open 2.0" in metrics


async def test_a_resume_point_the_stream_no_longer_holds_is_a_410(
    twin: InMemoryReadModelReader, keys: Keys
) -> None:
    position = twin.append(meeting("old", "2023-05-11", "CHN", "USA"))
    ((partition, offset),) = position.offsets.items()
    twin.trim_stream(partition, offset + 5)
    async with server(twin, keys) as client:
        gone = await client.get("/v1/stream", params={"after": position.token()})
    assert gone.status_code == 410
    assert gone.json()["partition"] == partition


async def test_the_stream_ends_with_an_error_event_when_the_read_models_vanish(
    twin: InMemoryReadModelReader, keys: Keys
) -> None:
    async with server(twin, keys) as client, subscribe(client) as subscriber:
        await subscriber.next()
        twin.state = "missing"
        message = await subscriber.next(3)
        while message.data is None:
            message = await subscriber.next(3)
        assert message.event == "error"
        with pytest.raises(EOFError):
            await subscriber.next(3)
