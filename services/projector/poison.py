"""Poison events met on the way, parked: the undecodable as they are fetched, and those whose
fold fails as the failed batch is applied one event at a time (see `deadletters`)."""

from __future__ import annotations

from aiokafka import TopicPartition
from pydantic import ValidationError

from services.platform.kafka import ConsumedRecord

from .deadletters import DeadLetters, Poison
from .metrics import ProjectorMetrics


class PoisonParking:
    """Parks a record, bytes and headers as they came, and counts it by reason."""

    def __init__(self, dead_letters: DeadLetters, metrics: ProjectorMetrics) -> None:
        self._dead_letters = dead_letters
        self._metrics = metrics

    async def park(self, tp: TopicPartition, record: ConsumedRecord, reason: str) -> None:
        """Return once the record is parked; raises `DeadLetterUnavailableError`."""
        poison = Poison(
            tp.topic,
            tp.partition,
            record.offset,
            record.key,
            record.value,
            reason,
            tuple(record.headers or ()),
        )
        await self._dead_letters.park(poison)
        self._metrics.dead_letters.labels(poison.kind).inc()


def reason_of(exc: Exception) -> str:
    """Why a record is poison, in one line (a validation error: its count and first error)."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        return f"{exc.error_count()} error(s), first at {loc}: {first['msg']}"
    return f"{type(exc).__name__}: {exc}"
