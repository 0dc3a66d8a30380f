"""Positions in the event log, and the token clients carry.

A position says how far into the log something reaches: for each partition of the topic,
the offset of the last event it covers. Ingest hands out one per accepted event and one
per request; the API waits on one (`min_position`) to read a client's own write; an SSE
`id` is one, so `Last-Event-ID` resumes every partition exactly where it stopped.

The token is `<topic>@<partition>:<offset>[,<partition>:<offset>...]`, partitions in
ascending order, e.g. `chancery.events@0:41,3:7`. Clients treat it as opaque.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_ENTRY = re.compile(r"^(\d{1,6}):(\d{1,19})$")
MAX_TOKEN_LENGTH = 4096


class InvalidPositionError(ValueError):
    """A position token that does not parse; the message says why."""


@dataclass(frozen=True)
class Position:
    """Offsets reached per partition of one topic. Immutable, hashable, orderable per partition."""

    topic: str
    offsets: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _TOPIC.match(self.topic):
            raise InvalidPositionError(f"invalid topic name {self.topic!r}")
        for partition, offset in self.offsets.items():
            if partition < 0 or offset < 0:
                raise InvalidPositionError("partitions and offsets are non-negative")
        object.__setattr__(self, "offsets", MappingProxyType(dict(sorted(self.offsets.items()))))

    @classmethod
    def at(cls, topic: str, partition: int, offset: int) -> Position:
        return cls(topic, {partition: offset})

    @classmethod
    def parse(cls, token: str) -> Position:
        """Parse a token; raises InvalidPositionError naming what is wrong."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidPositionError("position token is too long")
        topic, sep, rest = token.partition("@")
        if not sep or not rest:
            raise InvalidPositionError(
                "position token must look like '<topic>@<partition>:<offset>,...'"
            )
        offsets: dict[int, int] = {}
        for entry in rest.split(","):
            match = _ENTRY.match(entry)
            if match is None:
                raise InvalidPositionError(f"bad entry {entry[:40]!r} in position token")
            partition, offset = int(match.group(1)), int(match.group(2))
            if partition in offsets:
                raise InvalidPositionError(f"partition {partition} appears twice")
            offsets[partition] = offset
        return cls(topic, offsets)

    def token(self) -> str:
        body = ",".join(f"{p}:{o}" for p, o in self.offsets.items())
        return f"{self.topic}@{body}"

    def __str__(self) -> str:
        return self.token()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.offsets.items())

    def merge(self, other: Position) -> Position:
        """The position covering both: the larger offset per partition."""
        if other.topic != self.topic:
            raise InvalidPositionError(
                f"positions of different topics: {self.topic!r} and {other.topic!r}"
            )
        merged = dict(self.offsets)
        for partition, offset in other.offsets.items():
            merged[partition] = max(offset, merged.get(partition, -1))
        return Position(self.topic, merged)

    def advanced(self, partition: int, offset: int) -> Position:
        """This position with one partition moved to `offset`."""
        merged = dict(self.offsets)
        merged[partition] = offset
        return Position(self.topic, merged)

    def is_covered_by(self, applied: Mapping[int, int]) -> bool:
        """True when every partition here has been applied at least up to its offset."""
        return all(applied.get(p, -1) >= o for p, o in self.offsets.items())

    def is_empty(self) -> bool:
        return not self.offsets


def covering(topic: str, positions: Iterable[Position]) -> Position:
    """The smallest position that covers all of `positions` (empty if there are none)."""
    result = Position(topic)
    for position in positions:
        result = result.merge(position)
    return result
