"""Poison events parked in a list: the twin of `KafkaDeadLetters`."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.projector.deadletters import Poison


@dataclass
class InMemoryDeadLetters:
    parked: list[Poison] = field(default_factory=list)

    async def park(self, poison: Poison) -> None:
        self.parked.append(poison)
