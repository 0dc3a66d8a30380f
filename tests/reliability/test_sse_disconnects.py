"""Scenario 7: SSE subscribers dropped at random while events flow resume with Last-Event-ID
and see every event exactly once, in log order within each partition.

Several subscribers behave as a browser's EventSource does: they remember the id of every
message (pings and the opening comment included), and when the connection drops they
reconnect with `Last-Event-ID`. Each drops its connection at random, after a random number
of events or a random time (sometimes before it got any), while a producer sends events
through ingest to every partition. Each subscriber must end with every event sent after it
subscribed, none twice, and within each partition in offset order (the offsets come from
ingest's answers, so the check does not trust the stream's own ids).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from chancery.positions import Position
from tests.e2e.sse import messages

from .stack import Services, StackFactory

pytestmark = pytest.mark.reliability

SUBSCRIBERS = 6
BATCHES = 120
PER_BATCH = 10
MAX_CONNECTIONS = 400  # per subscriber: a bound on the reconnect loop
STATES = ["CHN", "USA", "RUS", "UKR", "IRN", "SAU", "FRA", "DEU", "IND", "BRA", "TUR", "EGY"]


def coded(tag: str, i: int, rng: random.Random) -> dict[str, Any]:
    a, b = rng.sample(STATES, 2)
    return {
        "specversion": "1.0",
        "id": f"{tag}-{i}",
        "source": "https://wire.example/sse",
        "type": "diplomacy.event.coded",
        "time": "2023-05-12T00:00:00Z",
        "data": {"actor1": a, "actor2": b, "cameo": "042", "occurred": "2023-05-11"},
    }


@dataclass
class Subscriber:
    """One EventSource-like client, and what it received."""

    name: str
    rng: random.Random
    received: list[str] = field(default_factory=list)
    last_id: str | None = None
    connections: int = 0
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(
        self, client: httpx.AsyncClient, done: asyncio.Event, expected: list[int]
    ) -> None:
        """Read, drop, reconnect, until every expected event came (or the bounds run out)."""
        while self.connections < MAX_CONNECTIONS:
            if done.is_set() and len(self.received) >= expected[0]:
                return
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            budget = self.rng.choice([0, 1, 2, 5, 10, 30, 1000])
            lifetime = self.rng.uniform(0.05, 0.6)
            self.connections += 1
            async with client.stream("GET", "/v1/stream", headers=headers) as response:
                assert response.status_code == 200, (await response.aread())[:300]
                try:
                    async with asyncio.timeout(lifetime):
                        async for message in messages(response):
                            if message.id is not None:
                                self.last_id = message.id
                            self.subscribed.set()
                            if message.data is not None:
                                self.received.append(json.loads(message.data)["id"])
                                budget -= 1
                                if budget <= 0:
                                    break  # drop the connection mid-stream
                except TimeoutError:
                    pass  # dropped at a random moment
            await asyncio.sleep(self.rng.uniform(0, 0.1))
        raise AssertionError(f"{self.name}: {MAX_CONNECTIONS} connections were not enough")


@pytest_asyncio.fixture(loop_scope="session")
async def streaming(stack: StackFactory) -> AsyncIterator[Services]:
    async with stack(
        api={"max_streams_per_client": 10 * SUBSCRIBERS, "stream_ping_s": 0.2}
    ) as services:
        yield services


def check(subscriber: Subscriber, sent: list[str], where: dict[str, tuple[int, int]]) -> list[str]:
    problems = []
    counts: dict[str, int] = {}
    for event_id in subscriber.received:
        counts[event_id] = counts.get(event_id, 0) + 1
    twice = sorted(e for e, n in counts.items() if n > 1)
    missing = sorted(set(sent) - set(counts))
    extra = sorted(set(counts) - set(sent))
    if twice:
        problems.append(f"{subscriber.name}: {len(twice)} events twice, e.g. {twice[:5]}")
    if missing:
        problems.append(f"{subscriber.name}: {len(missing)} events missing, e.g. {missing[:5]}")
    if extra:
        problems.append(f"{subscriber.name}: events never sent: {extra[:5]}")
    last: dict[int, int] = {}
    for event_id in subscriber.received:
        partition, offset = where[event_id]
        if offset <= last.get(partition, -1):
            problems.append(f"{subscriber.name}: partition {partition} went back to {offset}")
        last[partition] = offset
    return problems


@pytest.mark.timeout(300)
async def test_dropped_subscribers_resume_and_see_every_event_once_in_order(
    streaming: Services,
) -> None:
    rng = random.Random(7)
    seeds = [coded("before", i, rng) for i in range(30)]
    await streaming.until_applied(await streaming.post(seeds))  # applied: before "now"
    subscribers = [Subscriber(f"subscriber-{n}", random.Random(n)) for n in range(SUBSCRIBERS)]
    done = asyncio.Event()
    expected = [BATCHES * PER_BATCH]
    sent: list[str] = []
    where: dict[str, tuple[int, int]] = {}
    async with httpx.AsyncClient(
        base_url=streaming.api_url,
        headers={"Authorization": f"Bearer {streaming.keys.read}"},
        timeout=httpx.Timeout(30, read=10),
    ) as client:
        tasks = [asyncio.create_task(s.run(client, done, expected)) for s in subscribers]
        try:
            async with asyncio.timeout(30):
                await asyncio.gather(*(s.subscribed.wait() for s in subscribers))
            for b in range(BATCHES):
                batch = [coded("flow", b * PER_BATCH + i, rng) for i in range(PER_BATCH)]
                response = await streaming.ingest.post("/v1/events/batch", json=batch)
                assert response.status_code == 202, response.text
                for item in response.json()["accepted"]:
                    ((partition, offset),) = Position.parse(item["position"]).offsets.items()
                    where[item["id"]] = (partition, offset)
                    sent.append(item["id"])
                await asyncio.sleep(rng.uniform(0, 0.08))
            done.set()
            async with asyncio.timeout(180):
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert {p for p, _ in where.values()} == set(range(6))
    problems = [p for s in subscribers for p in check(s, sent, where)]
    connections = [s.connections for s in subscribers]
    print(f"connections per subscriber: {connections}")
    assert problems == [], "\n".join(problems)
    assert min(connections) >= 10  # each did drop, again and again
    streaming.projector_alive()


async def test_a_subscriber_of_an_empty_log_resumes_without_a_gap(
    stack: StackFactory,
) -> None:
    async with (
        stack(api={"stream_ping_s": 0.2}) as services,
        httpx.AsyncClient(
            base_url=services.api_url,
            headers={"Authorization": f"Bearer {services.keys.read}"},
            timeout=httpx.Timeout(30, read=10),
        ) as client,
    ):
        last_id: str | None = None
        async with client.stream("GET", "/v1/stream") as response:
            assert response.status_code == 200
            async for message in messages(response):
                last_id = message.id  # the opening comment: the start of the subscription
                break
        # Dropped before the first event; events arrive meanwhile; the client reconnects
        # with the id it has, as EventSource does (none, if none was given).
        rng = random.Random(1)
        sent = [coded("gap", i, rng) for i in range(12)]
        await services.until_applied(await services.post(sent))
        headers = {"Last-Event-ID": last_id} if last_id else {}
        got: list[str] = []
        async with client.stream("GET", "/v1/stream", headers=headers) as response:
            try:
                async with asyncio.timeout(2):
                    async for message in messages(response):
                        if message.data is not None:
                            got.append(json.loads(message.data)["id"])
            except TimeoutError:
                pass
        assert sorted(got) == sorted(e["id"] for e in sent)
