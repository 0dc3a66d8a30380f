"""The Kafka consumer as the projector's loop uses it: the port, typed where aiokafka is not.

aiokafka ships no types, so its consumer and its records are `Any` to mypy. `EventLogConsumer`
names the calls the loop makes (`AIOKafkaConsumer` answers them; a test's twin must too), and
its fetches come back as `ConsumedRecord`s (services/platform/kafka.py, shared with the dead
letter replay): the attributes read of aiokafka's `ConsumerRecord`. Past this edge, nothing
handles an untyped record.
"""

from __future__ import annotations

from typing import Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

from services.platform.kafka import ConsumedRecord

Fetched = dict[TopicPartition, list[ConsumedRecord]]
"""A fetch: each partition's records, in offset order."""


class EventLogConsumer(Protocol):
    """The calls the loop makes to its Kafka consumer."""

    def subscribe(self, topics: list[str], *, listener: ConsumerRebalanceListener) -> None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> object: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Fetched: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...
