"""Where one subscription's delivery stands, per partition, while events go out in parallel.

Events of different subjects are delivered at once, so they finish out of log order. The
position of a partition is the last offset before which every event is done (delivered, or
passed over by the filter): everything after it is delivered again after a crash, nothing
before it is ever delivered again. That is at-least-once with the smallest redelivery the
parallelism allows, the way Kafka consumers that process out of order commit offsets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping


class DeliveryPositions:
    def __init__(self, start: Mapping[int, int]) -> None:
        self._position: dict[int, int] = dict(start)
        self._read: dict[int, int] = dict(start)  # the last offset read, per partition
        self._open: dict[int, deque[int]] = {}  # offsets handed out, not all done, in order
        self._done: dict[int, set[int]] = {}  # done offsets behind an open one
        self._changed: set[int] = set()

    def passed(self, partition: int, offset: int) -> None:
        """Read and not to be delivered (the filter said no, or the record is unreadable)."""
        self._read[partition] = offset
        if not self._open.get(partition):
            self._moved(partition, offset)

    def opened(self, partition: int, offset: int) -> None:
        """Read and handed out for delivery (offsets of a partition come in log order)."""
        self._read[partition] = offset
        self._open.setdefault(partition, deque()).append(offset)

    def delivered(self, partition: int, offset: int) -> None:
        opened = self._open[partition]
        done = self._done.setdefault(partition, set())
        done.add(offset)
        while opened and opened[0] in done:
            done.discard(opened.popleft())
        self._moved(partition, opened[0] - 1 if opened else self._read[partition])

    def _moved(self, partition: int, offset: int) -> None:
        if self._position.get(partition, -1) < offset:
            self._position[partition] = offset
            self._changed.add(partition)

    @property
    def open(self) -> int:
        """Events handed out and not delivered yet."""
        return sum(len(q) for q in self._open.values()) - sum(len(d) for d in self._done.values())

    def current(self) -> dict[int, int]:
        return dict(self._position)

    def unsent(self, changes: Mapping[int, int]) -> None:
        """Changes taken but not written: taken again next time."""
        self._changed.update(changes)

    def take_changes(self) -> dict[int, int]:
        """The positions moved since the last call."""
        changed = {p: self._position[p] for p in sorted(self._changed)}
        self._changed.clear()
        return changed
