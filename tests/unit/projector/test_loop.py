"""The projector's loop around its background work, with an idle consumer and the twins of the
writer and the dead-letter topic: the version-pointer read and the Kafka offset commit run
beside the loop, and neither may hold up a stop, lose an error, or stop the loop when Redis
fails.

(The loop against real Kafka and Redis: tests/integration, SIGKILL, rebalance and rebuild.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from aiokafka import ConsumerRebalanceListener, TopicPartition
from redis.exceptions import ConnectionError as RedisConnectionError

from chancery.keyspace import PartitionSpace
from services.projector import kafka_commits, version_pointer
from services.projector import projector as projector_module
from services.projector.consumer import EventLogConsumer, Fetched
from services.projector.metrics import ProjectorMetrics
from services.projector.projection import ReadModelProjection
from services.projector.projector import Projector
from tests.twins.dead_letters import InMemoryDeadLetters
from tests.twins.read_model_writer import InMemoryReadModelWriter

TP = TopicPartition("events", 0)
METRICS = ProjectorMetrics()  # one registry: a second would register its metrics twice
STOP_BOUND_S = 10.0  # how long a stop may take before the test calls it a hang


class IdleConsumer:
    """A consumer of an empty partition; `commit` says how each commit ends."""

    def __init__(self, commit: str = "ok") -> None:
        self.commit_mode = commit
        self.committed = asyncio.Event()  # a commit was asked for

    def subscribe(self, topics: list[str], *, listener: ConsumerRebalanceListener) -> None:
        pass

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 5 for tp in tps}

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        pass

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    def highwater(self, tp: TopicPartition) -> int:
        return 5

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Fetched:
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.set()
        if self.commit_mode == "hangs":  # aiokafka waits for a coordinator while Kafka is away
            await asyncio.Event().wait()
        if self.commit_mode == "fails":
            raise RuntimeError("not a KafkaError")


class Writer(InMemoryReadModelWriter):
    """The writer's twin, every read of the version pointer counted (the first is
    `start_live`'s); read number `fail_read` fails as Redis would, gone."""

    def __init__(self, fail_read: int | None = None) -> None:
        super().__init__()
        self.reads = 0
        self.fail_read = fail_read
        self.read_five_times = asyncio.Event()

    async def active_version(self) -> int | None:
        self.reads += 1
        if self.reads >= 5:
            self.read_five_times.set()
        await asyncio.sleep(0.001)
        if self.reads == self.fail_read:
            raise RedisConnectionError("Redis went away")
        return await super().active_version()


async def served(writer: Writer) -> Writer:
    """`writer` serving version 1, whose one partition applied offsets 0 to 4."""
    version = await writer.new_version(1)
    await writer.activate(version)
    writer.models.strings[PartitionSpace(version, 0).offset] = b"4"
    return writer


@pytest.fixture(autouse=True)
def short_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version_pointer, "POINTER_CHECK_S", 0.01)
    monkeypatch.setattr(kafka_commits, "COMMIT_EVERY_S", 0.01)
    monkeypatch.setattr(projector_module, "RETRY_S", 0.01)


async def run_until(
    consumer: EventLogConsumer, writer: Writer, reached: asyncio.Event
) -> asyncio.Task[None]:
    """Start a live projector on one partition, stop it once `reached` is set (or the loop
    ended), and return its task once it stopped (or the bound passed)."""
    projector = Projector(
        consumer,
        await served(writer),
        # No batch ever comes: nothing is folded or parked.
        ReadModelProjection(writer.models),
        InMemoryDeadLetters(),
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
    with caplog.at_level(logging.WARNING, logger=kafka_commits.__name__):
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
