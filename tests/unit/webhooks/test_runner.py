"""One subscription's delivery, given a log and a receiver's answers (twins of Kafka, the
HTTP sender and the store): per-subject order, retries, pausing, what it writes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition

from chancery.contract import encode_event, parse_incoming, stamp
from chancery.subscriptions import (
    Subscription,
    SubscriptionFilters,
    SubscriptionState,
    new_secret,
    new_subscription_id,
)
from services.webhooks.messages import WebhookMessage
from services.webhooks.runner import LeaseLostError, RunnerSettings, SubscriptionRunner
from services.webhooks.sender import Answer
from services.webhooks.store import Progress
from tests.twins.subscriptions import InMemorySubscriptionStore
from tests.unit.contract.examples import example_dict

pytestmark = pytest.mark.unit

TOPIC = "chancery.events"
TOKEN = "worker-test"
SETTINGS = RunnerSettings(
    concurrency=4,
    max_buffered=100,
    max_attempts=3,
    max_failing_s=3600,
    backoff_first_s=0.001,
    backoff_max_s=0.01,
    attempts_kept=50,
)


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None


class Log:
    """Records handed out once, as a Kafka consumer's getmany does, then nothing."""

    def __init__(self, records: Mapping[int, Sequence[Record]]) -> None:
        self._pending = {TopicPartition(TOPIC, p): list(r) for p, r in records.items()}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        if not any(self._pending.values()):
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        out = {tp: r for tp, r in self._pending.items() if r}
        self._pending = {tp: [] for tp in self._pending}
        return out


def event(i: int, a: str, b: str) -> tuple[bytes, bytes]:
    raw = example_dict("diplomacy.meeting.held", parties=[a, b], participants=[])
    raw["id"] = f"m-{i}"
    key = "|".join(sorted((a, b)))
    logged = stamp(parse_incoming(raw), recorded_at=datetime.now(UTC), partition_key=key)
    return key.encode(), encode_event(logged)


class Receiver:
    """Answers per event id from a script (default 200), recording the order of requests."""

    def __init__(self, answers: Mapping[str, list[Answer]] | None = None) -> None:
        self.answers = {k: list(v) for k, v in (answers or {}).items()}
        self.calls: list[str] = []
        self.slow: dict[str, float] = {}

    async def __call__(self, url: str, message: WebhookMessage, key: bytes) -> Answer:
        import json

        event_id = json.loads(message.body)["id"]
        self.calls.append(event_id)
        await asyncio.sleep(self.slow.get(event_id, 0))
        scripted = self.answers.get(event_id)
        return scripted.pop(0) if scripted else Answer(200, 1.0)


async def _store() -> tuple[InMemorySubscriptionStore, Subscription]:
    store = InMemorySubscriptionStore()
    subscription = Subscription(
        id=new_subscription_id(),
        url="https://hooks.example.org/",
        filters=SubscriptionFilters(),
        created=datetime.now(UTC),
        created_by="test",
        start=f"{TOPIC}@",
        secret=new_secret(),
    )
    await store.create(subscription, {})
    await store.acquire(subscription.id, TOKEN, 10_000)
    return store, subscription


def _runner(
    store: InMemorySubscriptionStore, subscription: Subscription, log: Log, receiver: Receiver
) -> SubscriptionRunner:
    return SubscriptionRunner(
        subscription,
        start={},
        failing_since=None,
        reader=log,
        send=receiver,
        store=store,
        token=TOKEN,
        settings=SETTINGS,
    )


async def _run_until(runner: SubscriptionRunner, done: object, timeout_s: float = 5) -> None:
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(timeout_s):
        while True:
            if done() or task.done():  # type: ignore[operator]
                break
            await asyncio.sleep(0.005)
    runner.stop()
    await task


async def test_one_subject_in_log_order_while_others_go_on() -> None:
    store, subscription = await _store()
    records = [
        Record(i, *event(i, *(("CHN", "USA") if i % 2 else ("FRA", "DEU")))) for i in range(10)
    ]
    receiver = Receiver()
    receiver.slow["m-0"] = 0.2  # the first FRA-DEU event is slow: CHN-USA must not wait
    runner = _runner(store, subscription, Log({0: records}), receiver)
    await _run_until(runner, lambda: len(set(receiver.calls)) == 10)
    chn_usa = [c for c in receiver.calls if int(c[2:]) % 2]
    fra_deu = [c for c in receiver.calls if not int(c[2:]) % 2]
    assert chn_usa == [f"m-{i}" for i in range(1, 10, 2)]
    assert fra_deu == [f"m-{i}" for i in range(0, 10, 2)]
    assert receiver.calls.index("m-9") < receiver.calls.index("m-2")  # not held back
    assert store.positions[subscription.id] == {0: 9}
    assert len(store.attempts[subscription.id]) == 10


async def test_failures_are_retried_then_the_subscription_pauses() -> None:
    store, subscription = await _store()
    records = [Record(i, *event(i, "CHN", "USA")) for i in range(3)]
    failing = Answer(503, 2.0, "HTTP 503 Service Unavailable", retry_after_s=0.005)
    receiver = Receiver({"m-1": [failing] * 10})
    runner = _runner(store, subscription, Log({2: records}), receiver)
    await asyncio.wait_for(runner.run(), 5)  # returns by itself: it gave up
    assert receiver.calls == ["m-0", "m-1", "m-1", "m-1"]  # m-2 waits behind m-1: same subject
    status = store.status(subscription.id)
    assert status.state == SubscriptionState.PAUSED
    assert "3 attempts at one event failed" in str(status.reason)
    assert status.last_error == "HTTP 503 Service Unavailable"
    assert status.failing_since is not None
    assert store.positions[subscription.id] == {2: 0}  # m-1 is delivered again on resume
    attempts = store.attempts[subscription.id]
    assert [(a.event_id, a.attempt, a.outcome) for a in attempts] == [
        ("m-1", 3, "failed"),
        ("m-1", 2, "failed"),
        ("m-1", 1, "failed"),
        ("m-0", 1, "delivered"),
    ]


async def test_gone_pauses_at_once() -> None:
    store, subscription = await _store()
    receiver = Receiver({"m-0": [Answer(410, 1.0, "HTTP 410 Gone")]})
    runner = _runner(store, subscription, Log({0: [Record(0, *event(0, "CHN", "USA"))]}), receiver)
    await asyncio.wait_for(runner.run(), 5)
    assert receiver.calls == ["m-0"]
    assert "410 Gone" in str(store.status(subscription.id).reason)


async def test_events_the_filter_passes_over_move_the_position() -> None:
    store, subscription = await _store()
    subscription = subscription.model_copy(
        update={"filters": SubscriptionFilters(pair=("CHN-USA",))}
    )
    records = [
        Record(0, *event(0, "FRA", "DEU")),
        Record(1, *event(1, "CHN", "USA")),
        Record(2, b"x", b"not an event"),
        Record(3, *event(3, "FRA", "DEU")),
    ]
    receiver = Receiver()
    runner = _runner(store, subscription, Log({1: records}), receiver)
    await _run_until(runner, lambda: store.positions[subscription.id].get(1) == 3)
    assert receiver.calls == ["m-1"]


async def test_a_lost_lease_stops_delivery() -> None:
    store, subscription = await _store()
    receiver = Receiver()
    runner = _runner(store, subscription, Log({0: [Record(0, *event(0, "CHN", "USA"))]}), receiver)
    store.leases[subscription.id] = "another-worker"
    with pytest.raises(LeaseLostError):
        await asyncio.wait_for(runner.run(), 5)
    assert subscription.id not in store.positions or store.positions[subscription.id] == {}


async def test_the_deliveries_log_keeps_the_newest_attempts() -> None:
    store, subscription = await _store()
    records = [Record(i, *event(i, "CHN", "USA")) for i in range(20)]  # one subject: in order
    receiver = Receiver()
    runner = SubscriptionRunner(
        subscription,
        start={},
        failing_since=None,
        reader=Log({0: records}),
        send=receiver,
        store=store,
        token=TOKEN,
        settings=dataclasses.replace(SETTINGS, attempts_kept=5),
    )
    await _run_until(runner, lambda: store.positions.get(subscription.id, {}).get(0) == 19)
    attempts = store.attempts[subscription.id]
    assert [a.event_id for a in attempts] == ["m-19", "m-18", "m-17", "m-16", "m-15"]
    assert all(a.outcome == "delivered" and a.attempt == 1 for a in attempts)


class FlakyStore(InMemorySubscriptionStore):
    """Its first commit waits until `fail` is set, then fails, as when Redis goes away."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = asyncio.Event()
        self.failed = False

    async def commit(
        self, subscription_id: str, token: str, progress: Progress, *, kept: int
    ) -> bool:
        if not self.failed:
            self.failed = True
            await self.fail.wait()
            raise ConnectionError("Redis is away")
        return await super().commit(subscription_id, token, progress, kept=kept)


async def test_attempts_not_written_are_written_with_the_next_flush() -> None:
    store = FlakyStore()
    _, subscription = await _store()
    await store.create(subscription, {})
    await store.acquire(subscription.id, TOKEN, 10_000)
    failing = Answer(503, 2.0, "HTTP 503 Service Unavailable", retry_after_s=0.005)
    receiver = Receiver({"m-1": [failing]})
    records = [Record(i, *event(i, "CHN", "USA")) for i in range(2)]
    runner = _runner(store, subscription, Log({0: records}), receiver)
    running = asyncio.create_task(runner.run())
    async with asyncio.timeout(5):
        while True:
            if len(receiver.calls) == 3 and runner.status().delivered == 2:
                break
            await asyncio.sleep(0.005)
    store.fail.set()  # the flush in progress fails: the runner stops, its attempts kept
    with pytest.raises(ConnectionError):
        await running
    await runner.flush()
    attempts = store.attempts[subscription.id]
    assert [(a.event_id, a.attempt, a.outcome) for a in attempts] == [
        ("m-1", 2, "delivered"),
        ("m-1", 1, "failed"),
        ("m-0", 1, "delivered"),
    ]
    assert store.positions[subscription.id] == {0: 1}
