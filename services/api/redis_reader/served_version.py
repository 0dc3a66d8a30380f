"""Which read-model version the API serves, how far each partition of it is applied, and
waiting until a position is.

Each read resolves the served version once: the same round trip carries the pointer, the
version's state, every partition's applied offset and high watermark, and the data commands
for the version last seen served. If the pointer moved, or the version is not `ready` (Redis
emptied and the projector started over), the replies are thrown away and the read redone
for the version now served, or NotReadyError is raised: a partial version is never served,
nor one of another read-model layout (`keyspace.LAYOUT`; state "layout": run a rebuild).
In the steady state a read is one round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chancery import keyspace
from chancery.keyspace import MetaField, PartitionSpace, ProgressField, VersionState
from chancery.positions import Position
from services.api.reader import NotReadyError, PartitionProgress, PositionTimeoutError, Snapshot

from .round_trips import Command, Commands, RoundTrips, field_map, number

RESOLVE_ATTEMPTS = 3
WAIT_SLICE_S = 0.1
"""Longest single block while waiting for a position (an offset parked as a dead letter
has no stream entry to wake us, so the offsets are re-checked at least this often)."""
WAIT_COUNT = 100

_READY = VersionState.READY.encode()


@dataclass(frozen=True)
class Layout:
    """The served version as last seen: its number, identity (when it was created) and the
    key spaces of its partitions."""

    version: int
    created: bytes | None
    spaces: tuple[PartitionSpace, ...]

    def head(self) -> tuple[Command, Command]:
        """The commands that tell whether this version is still the one served: see
        `ServedVersion.still_served`."""
        return (
            ("GET", keyspace.ACTIVE_VERSION),
            ("HMGET", keyspace.version_meta(self.version), MetaField.STATE, MetaField.CREATED_MS),
        )


def read_progress(progress_key: str) -> Command:
    """The command that reads a partition's applied offset and high watermark from its
    progress hash (`applied` is written with the offset, in the same atomic step)."""
    return ("HMGET", progress_key, ProgressField.APPLIED, ProgressField.HIGH_WATERMARK)


HEAD_REPLIES = 2
"""Replies to `Layout.head()` at the front of a batch."""


class ServedVersion:
    def __init__(self, round_trips: RoundTrips, topic: str) -> None:
        self._round_trips = round_trips
        self.topic = topic
        self._layout: Layout | None = None
        self._last: tuple[tuple[int | None, ...], Snapshot] | None = None

    async def layout(self) -> Layout:
        """The served version as last seen, or as resolved now if none was."""
        return self._layout or await self._resolve()

    def still_served(self, layout: Layout, replies: Sequence[Any]) -> bool:
        """Whether the replies to `layout.head()` show `layout` still served and ready
        (if not, the next `layout()` resolves it again)."""
        active, (state, created) = replies[0], replies[1]
        served = (
            active is not None
            and int(active) == layout.version
            and state == _READY
            and created == layout.created
        )
        if not served:
            self._layout = None
        return served

    def layout_for(self, snapshot: Snapshot) -> Layout:
        """The layout of the version `snapshot` was taken in."""
        layout = self._layout
        if layout is None or layout.version != snapshot.version:
            spaces = tuple(PartitionSpace(snapshot.version, p) for p in range(snapshot.partitions))
            return Layout(snapshot.version, None, spaces)
        return layout

    def snapshot_of(self, version: int, applied: list[int | None], high: list[int]) -> Snapshot:
        """The snapshot of these offsets: the one handed out last while nothing moved (what
        is derived from a snapshot is then computed once for a run of reads)."""
        key = (version, *applied, *high)
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        progress = tuple(PartitionProgress(p, offset, high[p]) for p, offset in enumerate(applied))
        snapshot = Snapshot(version, self.topic, progress)
        self._last = (key, snapshot)
        return snapshot

    async def read(
        self, commands_of: Callable[[Layout], Commands]
    ) -> tuple[list[Any], Snapshot, Layout]:
        """One round trip: the version check, every partition's progress, then the commands
        `commands_of` gives for the version; their replies, and the snapshot they are of."""
        for _ in range(RESOLVE_ATTEMPTS):
            layout = await self.layout()
            count = len(layout.spaces)
            replies = await self._round_trips.send(
                (
                    *layout.head(),
                    *(read_progress(space.progress) for space in layout.spaces),
                    *commands_of(layout),
                )
            )
            if not self.still_served(layout, replies):
                continue
            progress = replies[HEAD_REPLIES : HEAD_REPLIES + count]
            applied = [number(reply[0]) for reply in progress]
            high = [number(reply[1]) or 0 for reply in progress]
            snapshot = self.snapshot_of(layout.version, applied, high)
            return replies[HEAD_REPLIES + count :], snapshot, layout
        raise NotReadyError(None, "missing")

    async def snapshot(self) -> Snapshot:
        snapshot, _ = await self.snapshot_and_layout()
        return snapshot

    async def snapshot_and_layout(self) -> tuple[Snapshot, Layout]:
        """The served version and every partition's progress, in one round trip."""
        _, snapshot, layout = await self.read(lambda layout: ())
        return snapshot, layout

    async def _resolve(self) -> Layout:
        round_trip = self._round_trips.send
        active, *_ = await round_trip((("GET", keyspace.ACTIVE_VERSION),))
        if active is None:
            raise NotReadyError(None, "missing")
        version = int(active)
        (meta,) = await round_trip((("HGETALL", keyspace.version_meta(version)),))
        meta = field_map(meta)
        partitions = meta.get(MetaField.PARTITIONS.encode())
        if partitions is None:
            raise NotReadyError(version, "missing")
        spaces = tuple(PartitionSpace(version, p) for p in range(int(partitions)))
        if keyspace.layout_of(meta) != keyspace.LAYOUT:
            raise NotReadyError(version, "layout")
        if meta.get(MetaField.STATE.encode()) != _READY:
            raise NotReadyError(version, "building", await self._progress(spaces))
        created = meta.get(MetaField.CREATED_MS.encode())
        layout = Layout(version, created if isinstance(created, bytes) else None, spaces)
        self._layout = layout
        return layout

    async def _progress(self, spaces: Sequence[PartitionSpace]) -> tuple[PartitionProgress, ...]:
        replies = await self._round_trips.send(
            tuple(read_progress(space.progress) for space in spaces)
        )
        return tuple(
            PartitionProgress(space.partition, number(reply[0]), number(reply[1]) or 0)
            for space, reply in zip(spaces, replies, strict=True)
        )

    async def wait_for(
        self, position: Position, timeout_s: float, *, known: Snapshot | None = None
    ) -> Snapshot:
        """Block on the lagging partitions' streams (XREAD from their applied offsets) until
        their entries reach `position`; re-read the offsets at least every WAIT_SLICE_S (an
        offset parked as a dead letter, or a duplicate, has no entry to wake us)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout_s
        snapshot = known
        while True:
            if snapshot is None:
                snapshot = await self.snapshot()
            if snapshot.covers(position):
                return snapshot
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PositionTimeoutError(position, snapshot, loop.time() - started)
            layout = await self.layout()
            applied = dict(snapshot.applied)
            lagging = [
                p
                for p, offset in position
                if p < len(layout.spaces) and applied.get(p, -1) < offset
            ]
            while lagging and (block_ms := int((deadline - loop.time()) * 1000)) > 0:
                replies = await self._round_trips.read_streams(
                    {
                        layout.spaces[p].stream: (
                            keyspace.stream_id(applied[p]) if p in applied else "0-0"
                        )
                        for p in lagging
                    },
                    count=WAIT_COUNT,
                    block_ms=max(1, min(block_ms, int(WAIT_SLICE_S * 1000))),
                )
                if not replies:
                    break  # a slice without entries: re-read the offsets
                by_stream = {s.stream.encode(): s.partition for s in layout.spaces}
                for name, entries in replies:
                    if entries:
                        p = by_stream[name if isinstance(name, bytes) else name.encode()]
                        applied[p] = keyspace.offset_of_stream_id(entries[-1][0])
                # an entry is added in the same atomic step that applies its offset
                lagging = [p for p in lagging if applied.get(p, -1) < position.offsets[p]]
            if not lagging:
                progress = tuple(
                    PartitionProgress(
                        pp.partition,
                        applied.get(pp.partition, pp.applied),
                        max(pp.high_watermark, applied.get(pp.partition, -1) + 1),
                    )
                    for pp in snapshot.progress
                )
                return Snapshot(snapshot.version, snapshot.topic, progress)
            snapshot = None
