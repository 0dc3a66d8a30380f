"""Parking poison events: the port, the Kafka adapter and its in-memory twin.

A poison event is one that cannot be decoded or that fails the fold. It is copied, bytes
unchanged, to the dead-letter topic with headers saying why and where it came from, and
only then does the projector move past it. Replaying it (`chancery dlq replay`) publishes
the same bytes to the event topic again once the cause is fixed; the projector's identity
check makes a replay of an event that was in fact applied harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaProducer

logger = logging.getLogger(__name__)

REASON = "chancery-reason"
ORIGIN_TOPIC = "chancery-origin-topic"
ORIGIN_PARTITION = "chancery-origin-partition"
ORIGIN_OFFSET = "chancery-origin-offset"


@dataclass(frozen=True)
class Poison:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str


class DeadLetters(Protocol):
    async def park(self, poison: Poison) -> None: ...


class KafkaDeadLetters:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def park(self, poison: Poison) -> None:
        await self._producer.send_and_wait(
            self._topic,
            value=poison.value,
            key=poison.key,
            headers=[
                (REASON, poison.reason[:2000].encode()),
                (ORIGIN_TOPIC, poison.topic.encode()),
                (ORIGIN_PARTITION, str(poison.partition).encode()),
                (ORIGIN_OFFSET, str(poison.offset).encode()),
            ],
        )
        logger.error(
            "parked poison event at %s/%d@%d: %s",
            poison.topic,
            poison.partition,
            poison.offset,
            poison.reason,
            extra={"partition": poison.partition, "offset": poison.offset},
        )


@dataclass
class InMemoryDeadLetters:
    parked: list[Poison] = field(default_factory=list)

    async def park(self, poison: Poison) -> None:
        self.parked.append(poison)
