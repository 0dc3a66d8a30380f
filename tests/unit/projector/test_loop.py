"""The projector's loop around its background work, with twins of the consumer and the writer:
the version-pointer read and the Kafka offset commit run beside the loop, and neither may
hold up a stop, lose an error, or stop the loop when Redis fails.

(The loop against real Kafka and Redis: tests/integration, SIGKILL, rebalance and rebuild.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition
from redis.exceptions import ConnectionError as RedisConnectionError

from services.projector import projector as projector_module
from services.projector.metrics import ProjectorMetrics
from services.projector.projector import Projector

TP = TopicPartition("events", 0)
METRICS = ProjectorMetrics()  # one registry: a second would register its metrics twice
STOP_BOUND_S = 10.0  # how long a stop may take before the test calls it a hang


class IdleConsumer:
    """A consumer of an empty partition; `commit` says how each commit ends."""

    def __init__(self, commit: str = "ok") -> None:
        self.commit_mode = commit
        self.committed = asyncio.Event()  # a commit was asked for

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 5 for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    def highwater(self, tp: TopicPartition) -> int:
        return 5

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, **kwargs: Any
    ) -> dict[TopicPartition, list[object]]:
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.set()
        if self.commit_mode == "hangs":  # aiokafka waits for a coordinator while Kafka is away
            await asyncio.Event().wait()
        if self.commit_mode == "fails":
            raise RuntimeError("not a KafkaError")


class _Info:
    state = "ready"


class Writer:
    """The version pointer and the stored offsets; `fail_read` fails that pointer read."""

    def __init__(self, fail_read: int | None = None) -> None:
        self.reads = 0
        self.fail_read = fail_read
        self.read_five_times = asyncio.Event()

    async def active_version(self) -> int:
        self.reads += 1
        if self.reads >= 5:
            self.read_five_times.set()
        await asyncio.sleep(0.001)
        if self.reads == self.fail_read:
            raise RedisConnectionError("Redis went away")
        return 1

    async def ensure_active_version(self, partitions: int, above: int = 0) -> int:
        return 1

    async def version_info(self, version: int) -> _Info:
        return _Info()

    async def stored_offsets(self, spaces: Sequence[object]) -> list[int]:
        return [4 for _ in spaces]

    async def mark_caught_up(self, space: object, high: int) -> None:
        pass


@pytest.fixture(autouse=True)
def short_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projector_module, "POINTER_CHECK_S", 0.01)
    monkeypatch.setattr(projector_module, "KAFKA_COMMIT_EVERY_S", 0.01)
    monkeypatch.setattr(projector_module, "RETRY_S", 0.01)


async def run_until(
    consumer: IdleConsumer, writer: Writer, reached: asyncio.Event
) -> asyncio.Task[None]:
    """Start a live projector on one partition, stop it once `reached` is set (or the loop
    ended), and return its task once it stopped (or the bound passed)."""
    projector = Projector(
        consumer,
        writer,  # type: ignore[arg-type]
        # No batch ever comes: nothing is folded or parked.
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        METRICS,
        topic="events",
        partitions=1,
        max_batch=10,
        fetch_timeout_ms=5,
    )
    await projector.start_live()
    projector.assigned([TP])
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    waiting = asyncio.ensure_future(reached.wait())
    await asyncio.wait([task, waiting], timeout=STOP_BOUND_S, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    stop.set()
    await asyncio.wait([task], timeout=STOP_BOUND_S)
    return task


async def test_a_commit_that_never_ends_does_not_hold_up_a_stop() -> None:
    consumer = IdleConsumer(commit="hangs")
    task = await run_until(consumer, Writer(), consumer.committed)
    assert task.done(), "the projector did not stop while a Kafka commit hung"
    assert task.exception() is None


async def test_a_failed_commit_is_logged_when_the_loop_stops_before_raising_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = IdleConsumer(commit="fails")
    with caplog.at_level(logging.WARNING, logger=projector_module.__name__):
        task = await run_until(consumer, Writer(), consumer.committed)
    assert task.done()
    if task.exception() is None:  # stopped before the next round could raise it: logged
        assert "Kafka offset commit failed: RuntimeError('not a KafkaError')" in caplog.text
    else:
        assert isinstance(task.exception(), RuntimeError)


async def test_a_redis_error_in_the_background_pointer_read_is_retried() -> None:
    writer = Writer(fail_read=2)
    task = await run_until(IdleConsumer(), writer, writer.read_five_times)
    assert writer.reads >= 5, "the loop stopped reading the pointer after Redis failed once"
    assert task.done()
    assert task.exception() is None
