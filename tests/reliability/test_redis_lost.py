"""Scenario 3: Redis killed (SIGKILL) and restarted empty under the running services.

A Redis server of the test's own holds the read models of a 20,000-event log, replayed by
the live projector. Before the crash, the API is asked a few hundred questions about that
log (every pair, actor and person; tests/reliability/answers.py) and the read models are
dumped canonically. Then Redis is killed, left down for a while, and started again, empty.

While it is down and while the projector rebuilds, a poller keeps asking the API: every
answer must be a 503 with Retry-After and a problem body, or a 200 identical to the answer
from before the crash; a 200 that differs would be partial data served silently. The
projector (the same process: nobody restarts it) must notice and rebuild; the poller must
have seen the rebuild (503s while the new version is building). Afterwards the answers equal
those from before, and so does the canonical dump, modulo the version number. Ingest, whose
idempotency records lived in the same Redis, serves again too.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from chancery.auth import Authenticator
from services.cli.local import RedisServer
from tests.e2e.conftest import Keys
from tests.integration.projector_helpers import (
    active_version,
    canonical_dump,
    diff_dumps,
    end_offsets,
    generate_log,
    publish,
    wait_until_applied,
)
from tests.unit.ingest.support import make_event

from .answers import Answer, Question, answers, ask, differences, questions
from .evidence import problem_shape
from .stack import create_topic, new_topic_name, running

pytestmark = pytest.mark.reliability

EVENTS = 20_000
DOWN_S = 3.0


@dataclass
class Poller:
    """Asks the API round and round, and judges every answer against the one from before."""

    api: httpx.AsyncClient
    before: dict[str, Answer]
    qs: list[Question]
    phase: str = "steady"
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            question = self.qs[n % len(self.qs)]
            n += 1
            phase = self.phase
            try:
                got = await ask(self.api, question)
            except httpx.TransportError as exc:
                self.wrong.append(f"{phase}: {question.name}: no answer ({exc!r})")
                continue
            self.seen[(phase, got.status)] += 1
            if got.status == 200:
                if got != self.before[question.name]:
                    self.wrong.append(f"{phase}: {question.name}: a 200 that differs (partial)")
            elif got.status == 503 or (got.status == 500 and phase == "down"):
                # 500 while Redis is down is the known bug of test_redis_down_is_503_not_500
                self.wrong += [
                    f"{phase}: {question.name}: {p}" for p in problem_shape(got.body, got.status)
                ]
            else:
                self.wrong.append(f"{phase}: {question.name}: {got.status} {str(got.body)[:200]}")
            await asyncio.sleep(0.005)


async def _until_serving(api: httpx.AsyncClient, question: Question, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if (await ask(api, question)).status == 200:
                return
            await asyncio.sleep(0.05)


@pytest.mark.timeout(600)
async def test_redis_lost_is_rebuilt_and_partial_data_is_never_served(
    kafka_bootstrap: str,
    dedicated_redis: RedisServer,
    keys: Keys,
    authenticator: Authenticator,
) -> None:
    log = generate_log(EVENTS, seed=3)
    events = [p.event for p in log]
    topic = await asyncio.to_thread(create_topic, kafka_bootstrap, new_topic_name("redis-lost"))
    await publish(kafka_bootstrap, topic, log)
    ends = await end_offsets(kafka_bootstrap, topic)
    url = dedicated_redis.url(0)
    redis = Redis.from_url(url)
    try:
        async with running(
            bootstrap=kafka_bootstrap,
            redis_url=url,
            keys=keys,
            authenticator=authenticator,
            topic=topic,
            projector_settings={"max_batch_events": 200},
        ) as services:
            v1 = await wait_until_applied(redis, ends, timeout_s=240)
            qs = questions(events)
            await _until_serving(services.api, qs[0], 30)
            before = await answers(services.api, qs)
            assert {a.status for a in before.values()} == {200}, "the API does not serve yet"
            before_dump = await canonical_dump(redis, v1)

            poller = Poller(services.api, before, qs)
            stop = asyncio.Event()
            polling = asyncio.create_task(poller.run(stop))
            try:
                await asyncio.sleep(0.5)
                poller.phase = "down"
                await asyncio.to_thread(dedicated_redis.kill)
                await asyncio.sleep(DOWN_S)
                await asyncio.to_thread(dedicated_redis.start)
                await asyncio.to_thread(dedicated_redis.wait_ready, 60)
                poller.phase = "rebuilding"
                started = time.monotonic()
                v2 = await _rebuilt(redis, ends, 240)
                rebuilt_s = time.monotonic() - started
                await _until_serving(services.api, qs[0], 60)
                poller.phase = "after"
                await asyncio.sleep(0.5)
            finally:
                stop.set()
                await polling
            services.projector_alive()  # the same projector noticed and rebuilt
            after = await answers(services.api, qs)
            after_dump = await canonical_dump(redis, v2)
            accepted = await _post_retrying(services.ingest, make_event(id_="after-redis"))
    finally:
        await redis.aclose()

    print(f"{len(qs)} questions; answers while polling {dict(poller.seen)}")
    print(f"rebuilt in {rebuilt_s:.1f} s")
    assert poller.wrong == [], "\n".join(poller.wrong[:20])
    assert poller.seen[("rebuilding", 503)] > 0, "the poller never saw the rebuild"
    assert poller.seen[("down", 503)] + poller.seen[("down", 500)] > 0
    assert differences(before, after) == []
    assert diff_dumps(before_dump, after_dump) == []  # keys are compared below the version
    assert accepted.status_code == 202, accepted.text


async def _post_retrying(ingest: httpx.AsyncClient, event: dict[str, object]) -> httpx.Response:
    """POST as a client should: a 503 is retried after its Retry-After (bounded)."""
    for _ in range(10):
        response = await ingest.post("/v1/events", json=event)
        if response.status_code != 503:
            return response
        await asyncio.sleep(min(1.0, float(response.headers["Retry-After"])))
    return response


async def _rebuilt(redis: Redis, ends: dict[int, int], timeout_s: float) -> int:
    """The version the projector rebuilt into, once it caught up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await active_version(redis) is not None:
                return await wait_until_applied(redis, ends, timeout_s=deadline - time.monotonic())
        except RedisConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the read models were not rebuilt")


async def test_redis_down_is_503_with_retry_after_not_500(
    kafka_bootstrap: str,
    dedicated_redis: RedisServer,
    keys: Keys,
    authenticator: Authenticator,
) -> None:
    async with running(
        bootstrap=kafka_bootstrap,
        redis_url=dedicated_redis.url(0),
        keys=keys,
        authenticator=authenticator,
    ) as services:
        await services.until_applied(await services.post([make_event(id_="before-kill")]))
        await asyncio.to_thread(dedicated_redis.kill)
        wrong = []
        for path in ("/v1/relations/CHN/RUS", "/v1/countries/CHN/timeline", "/v1/people/li-hui"):
            response = await services.api.get(path)
            if response.status_code != 503 or "retry-after" not in response.headers:
                wrong.append(f"GET {path}: {response.status_code} {response.headers}")
        response = await services.ingest.post("/v1/events", json=make_event(id_="while-down"))
        if response.status_code != 503 or "retry-after" not in response.headers:
            wrong.append(f"POST /v1/events: {response.status_code} {response.text[:200]}")
        await asyncio.to_thread(dedicated_redis.start)
        await asyncio.to_thread(dedicated_redis.wait_ready, 60)
    assert wrong == [], "\n".join(wrong)
