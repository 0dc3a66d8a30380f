"""Parking poison events: the port and its Kafka adapter (the twin: tests/twins/dead_letters).

A poison event is one that cannot be decoded or that fails the fold. It is copied, bytes
and headers unchanged, to the dead-letter topic with headers saying why and where it came
from, and only once Kafka has acknowledged that copy does the projector move its offset
past it (parking comes before the atomic step that covers the offset). A crash in between
parks it again on restart: the dead-letter topic is at-least-once, and replaying both copies
is harmless (the projector drops an identity it has already applied).

Replaying (services.cli.dlq.replay_dead_letters, `chancery dlq replay`) publishes the
same bytes to the partition they came from once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

logger = logging.getLogger(__name__)

REASON = "chancery-reason"
ORIGIN_TOPIC = "chancery-origin-topic"
ORIGIN_PARTITION = "chancery-origin-partition"
ORIGIN_OFFSET = "chancery-origin-offset"
PARKED_HEADERS = frozenset({REASON, ORIGIN_TOPIC, ORIGIN_PARTITION, ORIGIN_OFFSET})

PARK_TIMEOUT_S = 10.0


class DeadLetterUnavailableError(RuntimeError):
    """The dead-letter topic did not acknowledge: the poison event is not parked yet."""


@dataclass(frozen=True)
class Poison:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    headers: Sequence[tuple[str, bytes]] = ()

    @property
    def kind(self) -> str:
        """The reason's first word (`undecodable`, `fold`): the metric's label."""
        return self.reason.split(":", 1)[0].split(" ", 1)[0]


class DeadLetters(Protocol):
    async def park(self, poison: Poison) -> None:
        """Return once the poison event is durably parked; raise DeadLetterUnavailableError."""
        ...


class KafkaDeadLetters:
    def __init__(
        self, producer: AIOKafkaProducer, topic: str, *, timeout_s: float = PARK_TIMEOUT_S
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s

    async def park(self, poison: Poison) -> None:
        headers = [(k, v) for k, v in poison.headers if k not in PARKED_HEADERS]
        headers += [
            (REASON, poison.reason[:2000].encode()),
            (ORIGIN_TOPIC, poison.topic.encode()),
            (ORIGIN_PARTITION, str(poison.partition).encode()),
            (ORIGIN_OFFSET, str(poison.offset).encode()),
        ]
        try:
            # send_and_wait can hang while the broker is away (aiokafka issue 1101): bound it.
            async with asyncio.timeout(self._timeout_s):
                await self._producer.send_and_wait(
                    self._topic, value=poison.value, key=poison.key, headers=headers
                )
        except (KafkaError, TimeoutError) as exc:
            raise DeadLetterUnavailableError(
                f"cannot park {poison.topic}/{poison.partition}@{poison.offset}: {exc!r}"
            ) from exc
        logger.error(
            "parked poison event at %s/%d@%d: %s",
            poison.topic,
            poison.partition,
            poison.offset,
            poison.reason,
            extra={"partition": poison.partition, "offset": poison.offset},
        )
