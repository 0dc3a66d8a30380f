"""The partitions this instance owns, each from its assignment to its revocation, and where
each one stands: the offset stored in Redis, the log's end, whether it was sought there.

Ownership of a partition is an object (`OwnedPartition`) made at assignment and dropped at
revocation. A rebalance can happen while a round awaits Redis (aiokafka runs the listener in
its own task), so work that finishes for a partition checks `Ownership.holds` first: a
partition no longer owned, or owned again since, is another owner's now, and the offset fence
in the apply script makes that owner (or this one, reloading) re-seek to whatever was really
applied. The listener does no I/O, so it cannot fail (aiokafka would log and swallow the
error); positions are loaded by the loop (`load_positions`), where a Redis error is retried
like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from chancery.keyspace import PartitionSpace

from .consumer import EventLogConsumer
from .store import ReadModelWriter

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class OwnedPartition:
    """A partition this instance owns, from its assignment to its revocation."""

    tp: TopicPartition
    expected: int | None = None  # the offset stored in Redis, as last read or written
    high: int = 0  # the log's end offset, as last seen
    loaded: bool = False  # positions read from Redis and the consumer sought there
    generation: int = 0  # how many times it was (re)loaded: records fetched before are stale

    @property
    def partition(self) -> int:
        return int(self.tp.partition)

    @property
    def next_offset(self) -> int:
        return 0 if self.expected is None else self.expected + 1


class Ownership:
    """The owned partitions, by number; kept by the rebalance listener, loaded by the loop."""

    def __init__(self, topic: str, consumer: EventLogConsumer, writer: ReadModelWriter) -> None:
        self._topic = topic
        self._consumer = consumer
        self._writer = writer
        self._owned: dict[int, OwnedPartition] = {}

    # --- kept by the rebalance listener: no I/O here ------------------------------------------

    def assigned(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            if tp.topic == self._topic:
                self._owned[tp.partition] = OwnedPartition(tp)

    def revoked(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            if tp.topic == self._topic:
                self._owned.pop(tp.partition, None)

    def listener(self) -> RebalanceListener:
        return RebalanceListener(self)

    # --- what the loop asks --------------------------------------------------------------------

    def __iter__(self) -> Iterator[OwnedPartition]:
        return iter(list(self._owned.values()))

    def get(self, partition: int) -> OwnedPartition | None:
        return self._owned.get(partition)

    def holds(self, owned: OwnedPartition) -> bool:
        """Still owned: not revoked, nor revoked and assigned again, since `owned` was made."""
        return self._owned.get(owned.partition) is owned

    def follows_on(self, owned: OwnedPartition, expected: int | None) -> bool:
        """Still owned and loaded, with `expected` still the offset applied: work planned
        from `expected` may go ahead (else the partition is being reloaded)."""
        return self.holds(owned) and owned.loaded and owned.expected == expected

    def any_unloaded(self) -> bool:
        return any(not o.loaded for o in self._owned.values())

    def unload_all(self) -> None:
        """Make the loop read every partition's position from Redis again."""
        for owned in self._owned.values():
            owned.loaded = False

    def high(self, owned: OwnedPartition) -> int:
        """The log's end offset of the partition, as last seen by the consumer or here."""
        try:
            seen = self._consumer.highwater(owned.tp)
        except IllegalStateError:
            seen = None
        return max(owned.high, seen or 0)

    def all_caught_up(self, ahead: Mapping[OwnedPartition, int] | None = None) -> bool:
        """Every owned partition applied up to the log's end (`ahead`: or will have, once the
        writes that move a partition's next offset to the value given succeed)."""
        owned = list(self._owned.values())
        ahead = ahead or {}
        return bool(owned) and all(
            o.loaded and max(o.next_offset, ahead.get(o, 0)) >= self.high(o) for o in owned
        )

    def counts(self) -> tuple[int, int]:
        """(events applied, events in the log) across the owned partitions."""
        owned = list(self._owned.values())
        applied = sum(o.next_offset for o in owned if o.loaded)
        return applied, sum(self.high(o) for o in owned)

    def committable_offsets(self) -> dict[TopicPartition, int]:
        """Kafka's notion of each loaded partition's position: the next offset to read."""
        return {
            o.tp: o.expected + 1
            for o in self._owned.values()
            if o.loaded and o.expected is not None
        }

    def status(self) -> list[dict[str, object]]:
        """Per owned partition: its applied offset, the log's end, the lag, whether loaded."""
        partitions: list[dict[str, object]] = []
        for p in sorted(self._owned):
            owned = self._owned[p]
            high = self.high(owned)
            partitions.append(
                {
                    "partition": p,
                    "applied_offset": owned.expected,
                    "high_watermark": high,
                    "lag": max(0, high - owned.next_offset),
                    "loaded": owned.loaded,
                }
            )
        return partitions

    # --- positions -----------------------------------------------------------------------------

    async def load_positions(self, version: int) -> None:
        """Seek each newly owned (or reset) partition to the offset stored in Redis."""
        pending = [o for o in self._owned.values() if not o.loaded]
        if not pending:
            return
        try:
            ends = await self._consumer.end_offsets([o.tp for o in pending])
        except KafkaError as exc:
            logger.warning("cannot read the log's end offsets yet (%r); retrying", exc)
            return
        spaces = [PartitionSpace(version, o.partition) for o in pending]
        stored = await self._writer.stored_offsets(spaces)
        for owned, space, offset in zip(pending, spaces, stored, strict=True):
            if not self.holds(owned):
                continue
            try:
                if offset is None:
                    await self._consumer.seek_to_beginning(owned.tp)
                else:
                    self._consumer.seek(owned.tp, offset + 1)
            except IllegalStateError:
                continue  # revoked in the meantime
            owned.expected = offset
            owned.high = int(ends.get(owned.tp, 0))
            owned.loaded = True
            owned.generation += 1
            if owned.next_offset >= owned.high:
                await self._writer.mark_caught_up(space, owned.high)
            logger.info(
                "partition %d: version %d, resuming after offset %s of %d",
                owned.partition,
                version,
                offset,
                owned.high,
            )


class RebalanceListener:
    """aiokafka's rebalance callbacks, passed on to `Ownership` (registered as aiokafka's
    `ConsumerRebalanceListener` below rather than subclassing it: aiokafka is untyped)."""

    def __init__(self, ownership: Ownership) -> None:
        self._ownership = ownership

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._ownership.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._ownership.assigned(sorted(assigned))


ConsumerRebalanceListener.register(RebalanceListener)
