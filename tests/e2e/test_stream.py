"""The live stream over the real stack: resume with no gap and no duplicate, filters, pings,
browser auth, and the per-client limit (a real uvicorn server, httpx streaming)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from chancery.auth import Scope
from chancery.positions import Position
from tests.e2e.conftest import Stack
from tests.e2e.sse import Message, Subscriber

pytestmark = pytest.mark.e2e

SOURCE = "https://wire.example/stream"
PAIRS = [
    ("CHN", "USA"),
    ("IRN", "SAU"),
    ("FRA", "DEU"),
    ("BRA", "ARG"),
    ("JPN", "KOR"),
    ("IND", "PAK"),
    ("EGY", "ISR"),
    ("TUR", "GRC"),
]


def coded(tag: str, i: int, *, pair: tuple[str, str] | None = None) -> dict[str, Any]:
    a, b = pair or PAIRS[i % len(PAIRS)]
    return {
        "specversion": "1.0",
        "id": f"{tag}-{i}",
        "source": SOURCE,
        "type": "diplomacy.event.coded",
        "time": "2023-05-12T00:00:00Z",
        "data": {"actor1": a, "actor2": b, "cameo": "042", "occurred": "2023-05-11"},
    }


@asynccontextmanager
async def subscribe(
    stack: Stack, *, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[Subscriber]:
    async with stack.api.stream(
        "GET",
        "/v1/stream",
        params=params,
        headers=headers or {},
        timeout=httpx.Timeout(30, read=None),
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        subscriber = Subscriber(response)
        try:
            yield subscriber
        finally:
            await subscriber.close()


def ids(messages: list[Message]) -> list[str]:
    return [json.loads(m.data or "{}")["id"] for m in messages]


def offsets(messages: list[Message], start: str | None) -> list[tuple[int, int]]:
    """(partition, offset) of each event, from the change between consecutive SSE ids."""
    out: list[tuple[int, int]] = []
    previous: dict[int, int] = dict(Position.parse(start).offsets) if start else {}
    for m in messages:
        assert m.id is not None
        current = dict(Position.parse(m.id).offsets)
        moved = [(p, o) for p, o in current.items() if previous.get(p) != o]
        assert len(moved) == 1, (previous, current)
        out.append(moved[0])
        previous = current
    return out


async def test_a_client_resumes_with_last_event_id_with_no_gap_and_no_duplicate(
    stack: Stack,
) -> None:
    warmup = await stack.post([coded("warmup", i) for i in range(3)])
    await stack.get("/v1/relations/CHN/USA", min_position=warmup)  # applied: before "now"
    async with subscribe(stack) as first:
        opening = await first.next()
        assert "chancery stream" in opening.comments
        start = opening.id
        sent = [coded("resume", i) for i in range(10)]
        await stack.post(sent)
        got = await first.events(4)
        last_id = first.last_id
    assert last_id is not None
    more = [coded("resume", i) for i in range(10, 20)]
    await stack.post(more)
    async with subscribe(stack, headers={"Last-Event-ID": last_id}) as second:
        rest = await second.events(16)
        extra = await second.quiet_for(0.8)
    delivered = ids(got) + ids(rest)
    assert extra == []
    assert sorted(delivered) == sorted(e["id"] for e in sent + more)
    assert len(set(delivered)) == len(delivered) == 20
    # each partition's events come in log order
    per_partition: dict[int, list[int]] = {}
    for p, o in offsets(got, start) + offsets(rest, last_id):
        per_partition.setdefault(p, []).append(o)
    assert all(seq == sorted(seq) for seq in per_partition.values())


async def test_after_resumes_like_last_event_id_and_absent_partitions_start_at_the_beginning(
    stack: Stack,
) -> None:
    response = await stack.ingest.post(
        "/v1/events/batch",
        content=json.dumps([coded("after", i) for i in range(8)]),
        headers={"Content-Type": "application/cloudevents-batch+json"},
    )
    accepted = response.json()["accepted"]
    one = Position.parse(accepted[0]["position"])
    ((partition, offset),) = one.offsets.items()
    token = one.token()
    async with subscribe(stack, after=token) as subscriber:
        opening = await subscriber.next()
        assert opening.id == token
        everything = await subscriber.events(1)
        got = [everything[0], *await subscriber.quiet_for(1.5)]
    delivered = offsets(got, token)
    # partition `partition` continues after `offset`; every other starts at its beginning
    assert all(o > offset for p, o in delivered if p == partition)
    assert any(p != partition and o == 0 for p, o in delivered)
    assert {e["id"] for e in accepted[1:]} <= set(ids(got))


async def test_filters_deliver_only_matching_events_and_pings_carry_the_position(
    stack: Stack,
) -> None:
    async with subscribe(stack, type="meeting.held", country="irn,sau") as subscriber:
        await subscriber.next()
        await stack.post([coded("filtered", i) for i in range(6)])
        meeting = {
            "specversion": "1.0",
            "id": "stream-iran-saudi-meeting",
            "source": SOURCE,
            "type": "diplomacy.meeting.held",
            "time": "2023-05-12T00:00:00Z",
            "data": {"occurred": "2023-05-11", "parties": ["IRN", "SAU"]},
        }
        position = await stack.post([meeting])
        (only,) = await subscriber.events(1)
        assert json.loads(only.data or "")["id"] == "stream-iran-saudi-meeting"
        assert Position.parse(only.id or "").is_covered_by(
            dict(Position.parse(position).offsets)
        ) or Position.parse(position).is_covered_by(dict(Position.parse(only.id or "").offsets))
        assert await subscriber.quiet_for(0.5) == []
        # events that no filter lets through still move the position, carried by the pings
        later = await stack.post([coded("filtered-later", i) for i in range(4)])
        async with asyncio.timeout(10):
            while True:
                message = await subscriber.next()
                assert message.data is None
                if message.id and Position.parse(later).is_covered_by(
                    dict(Position.parse(message.id).offsets)
                ):
                    break


async def test_a_browser_authenticates_with_access_token(stack: Stack) -> None:
    no_header = {"Authorization": ""}
    refused = await stack.api.get("/v1/stream", headers=no_header)
    assert refused.status_code == 401
    token = stack.keys.token(Scope.EVENTS_READ)
    async with subscribe(stack, headers=no_header, access_token=token) as subscriber:
        assert "chancery stream" in (await subscriber.next()).comments
    weak = stack.keys.token(Scope.EVENTS_WRITE)
    forbidden = await stack.api.get("/v1/stream", headers=no_header, params={"access_token": weak})
    assert forbidden.status_code == 403
    # access_token is for the stream only
    elsewhere = await stack.api.get(
        "/v1/relations/CHN/USA", headers=no_header, params={"access_token": token}
    )
    assert elsewhere.status_code == 401


async def test_a_client_may_hold_only_so_many_streams(stack: Stack) -> None:
    async with (
        subscribe(stack) as one,
        subscribe(stack) as two,
        subscribe(stack) as three,
    ):
        for s in (one, two, three):
            await s.next()
        refused = await stack.api.get("/v1/stream")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"]
        assert "3 streams" in refused.json()["detail"]
    # closed streams give their slots back (the server notices the disconnect)
    async with asyncio.timeout(10):
        while True:
            async with stack.api.stream("GET", "/v1/stream") as response:
                if response.status_code == 200:
                    break
            await asyncio.sleep(0.1)


async def test_a_bad_resume_token_is_422(stack: Stack) -> None:
    for token in ("garbage", "other.topic@0:1", f"{stack.topic}@99:1"):
        response = await stack.api.get("/v1/stream", headers={"Last-Event-ID": token})
        assert response.status_code == 422, token
