"""The projector's read-model store over plain dicts: the twin of `RedisReadModelWriter`.

`MemoryReadModels` holds what Redis would hold (strings, hashes, lexicographic sorted sets,
sets, streams), read as the fold reads it (`pipeline`: the projection's `PipelinedReads`)
and changed as the apply script changes it (`apply`). `InMemoryReadModelWriter` is the
loop's `ReadModelWriter` over it: versions, each partition's offset, fenced as the script
fences it, and progress. tests/integration/test_projector_store.py holds the two equal.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chancery import keyspace
from chancery.keyspace import MetaField, PartitionSpace, ProgressField, VersionState
from services.projector.plan import FIXED_KEYS, WritePlan
from services.projector.store import Batch, Outcome, VersionInfo


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass
class MemoryReadModels:
    """Redis's keys, by type; values as Redis answers them (bytes)."""

    strings: dict[str, bytes] = field(default_factory=dict)
    hashes: dict[str, dict[str, bytes]] = field(default_factory=lambda: defaultdict(dict))
    zsets: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # scores 0
    sets: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # stream key -> (entry id, fields) in order
    streams: dict[str, list[tuple[str, dict[str, bytes]]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def pipeline(self, transaction: bool = False) -> ReadPipeline:
        return ReadPipeline(self)

    def apply(self, space: PartitionSpace, plan: WritePlan) -> int:
        """Run the plan's operations as the apply script does, the partition's stream being
        `space.stream`; returns the stream entries skipped (ids not above the last one)."""
        keys = plan.keys
        encoded, *blobs = plan.script_args()
        assert isinstance(encoded, str)
        args: list[str | int] = json.loads(encoded)
        skipped = 0

        def value(v: str | int) -> bytes:
            """A hash's or string's value: a string, or the number of a blob."""
            return _bytes(v) if isinstance(v, str) else _bytes(blobs[v - 1])

        def key(at: int) -> str:
            return keys[int(args[at]) - FIXED_KEYS - 1]

        i = 0
        while i < len(args):
            op = args[i]
            if op == "X":
                stored, n = self.hashes[key(i + 1)], int(args[i + 2])
                stream = self.streams[space.stream]
                for j, offset in enumerate(args[i + 3 : i + 3 + n]):
                    stored[keyspace.place_field(int(offset))] = _bytes(blobs[j])
                    top = keyspace.offset_of_stream_id(stream[-1][0]) if stream else -1
                    if int(offset) <= top:
                        skipped += 1
                        continue
                    fields = {keyspace.STREAM_FIELD.decode(): b""}
                    stream.append((keyspace.stream_id(int(offset)), fields))
                i += 3 + n
            elif op == "M":
                nk = int(args[i + 1])
                targets = [key(j) for j in range(i + 2, i + 2 + nk)]
                count = int(args[i + 2 + nk])
                members = args[i + 3 + nk : i + 3 + nk + count]
                for target in targets:
                    self.zsets[target].update(str(m) for m in members)
                i += 3 + nk + count
            elif op == "I":
                fields = self.hashes[key(i + 1)]
                name = str(args[i + 2])
                total = int(fields.get(name, b"0")) + int(args[i + 3])
                if total:
                    fields[name] = _bytes(total)
                else:
                    fields.pop(name, None)
                i += 4
            elif op == "T":
                self.strings[key(i + 1)] = value(args[i + 2])
                i += 3
            elif op == "K":
                target = key(i + 1)
                for kind in (self.strings, self.hashes, self.zsets, self.sets, self.streams):
                    kind.pop(target, None)
                i += 2
            else:
                target, count = key(i + 1), int(args[i + 2])
                items = args[i + 3 : i + 3 + count]
                if op == "H":
                    pairs = zip(items[0::2], items[1::2], strict=True)
                    self.hashes[target].update((str(f), value(v)) for f, v in pairs)
                elif op == "D":
                    for gone in items:
                        self.hashes[target].pop(str(gone), None)
                elif op == "Z":
                    self.zsets[target].update(str(m) for m in items[1::2])
                elif op == "R":
                    self.zsets[target].difference_update(str(m) for m in items)
                elif op == "S":
                    self.sets[target].update(str(m) for m in items)
                else:
                    raise ValueError(f"plan: unknown operation {op!r}")
                i += 3 + count
        return skipped

    def state(self) -> dict[str, object]:
        """Every non-empty key: strings and hash values as bytes, members as strings."""
        out: dict[str, object] = {}
        out.update(self.strings)
        out.update({k: dict(v) for k, v in self.hashes.items() if v})
        out.update({k: sorted(v) for k, v in [*self.zsets.items(), *self.sets.items()] if v})
        out.update({k: list(v) for k, v in self.streams.items() if v})
        return out


class ReadPipeline:
    """The reads the fold pipelines (answered at once, in order, by `execute`)."""

    def __init__(self, models: MemoryReadModels) -> None:
        self._models = models
        self._replies: list[Any] = []

    async def __aenter__(self) -> ReadPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def hmget(self, name: str, keys: list[str]) -> None:
        fields = self._models.hashes.get(name, {})
        self._replies.append([fields.get(k) for k in keys])

    def hgetall(self, name: str) -> None:
        fields = self._models.hashes.get(name, {})
        self._replies.append({k.encode(): v for k, v in fields.items()})

    def get(self, name: str) -> None:
        self._replies.append(self._models.strings.get(name))

    async def execute(self) -> list[Any]:
        replies, self._replies = self._replies, []
        return replies


class InMemoryReadModelWriter:
    """`ReadModelWriter` over `MemoryReadModels` (the stream is never trimmed)."""

    def __init__(self, models: MemoryReadModels | None = None, *, topic: str = "events") -> None:
        self.models = models if models is not None else MemoryReadModels()
        self._topic = topic

    async def active_version(self) -> int | None:
        raw = self.models.strings.get(keyspace.ACTIVE_VERSION)
        return int(raw) if raw is not None else None

    async def ensure_active_version(self, partitions: int, *, above: int = 0) -> int:
        active = await self.active_version()
        if active is not None:
            info = await self.version_info(active)
            if info is None or info.layout == keyspace.LAYOUT:
                return active
            above = max(above, active)  # of another layout: built anew, as Redis's writer does
        version = await self.new_version(partitions, above=above)
        self.models.strings[keyspace.ACTIVE_VERSION] = _bytes(version)
        return version

    async def new_version(self, partitions: int, *, above: int = 0) -> int:
        strings = self.models.strings
        version = max(int(strings.get(keyspace.VERSION_COUNTER, b"0")) + 1, above + 1)
        strings[keyspace.VERSION_COUNTER] = _bytes(version)
        self.models.hashes[keyspace.version_meta(version)] = {
            MetaField.LAYOUT: _bytes(keyspace.LAYOUT),
            MetaField.STATE: _bytes(VersionState.BUILDING),
            MetaField.PARTITIONS: _bytes(partitions),
            MetaField.TOPIC: _bytes(self._topic),
            MetaField.CREATED_MS: _bytes(_now_ms()),
        }
        return version

    async def activate(self, version: int) -> int | None:
        old = self.models.strings.get(keyspace.ACTIVE_VERSION)
        self.models.strings[keyspace.ACTIVE_VERSION] = _bytes(version)
        return int(old) if old is not None else None

    async def version_info(self, version: int) -> VersionInfo | None:
        meta = self.models.hashes.get(keyspace.version_meta(version))
        if not meta:
            return None
        return VersionInfo(
            version,
            meta[MetaField.STATE].decode(),
            int(meta[MetaField.PARTITIONS]),
            keyspace.layout_of({k.encode(): v for k, v in meta.items()}),
        )

    async def mark_ready_if_caught_up(self, version: int, partitions: int) -> bool:
        meta = self.models.hashes[keyspace.version_meta(version)]
        if meta.get(MetaField.STATE) == _bytes(VersionState.READY):
            return True
        progress = [
            self.models.hashes.get(PartitionSpace(version, p).progress, {})
            for p in range(partitions)
        ]
        if all(fields.get(ProgressField.CAUGHT_UP) == b"1" for fields in progress):
            meta[MetaField.STATE] = _bytes(VersionState.READY)
            meta[MetaField.READY_MS] = _bytes(_now_ms())
            return True
        return False

    async def stored_offsets(self, spaces: Sequence[PartitionSpace]) -> list[int | None]:
        raw = [self.models.strings.get(space.offset) for space in spaces]
        return [int(r) if r is not None else None for r in raw]

    async def mark_caught_up(self, space: PartitionSpace, high_watermark: int) -> None:
        self.models.hashes[space.progress].update(
            {
                ProgressField.CAUGHT_UP: b"1",
                ProgressField.HIGH_WATERMARK: _bytes(high_watermark),
                ProgressField.UPDATED_MS: _bytes(_now_ms()),
            }
        )

    async def apply(self, batches: Sequence[Batch]) -> list[Outcome]:
        return [self._apply(batch) for batch in batches]

    def _apply(self, batch: Batch) -> Outcome:
        space = batch.space
        stored = self.models.strings.get(space.offset)
        expected = None if batch.expected is None else _bytes(batch.expected)
        if stored != expected:
            return Outcome(False, int(stored) if stored is not None else None)
        skipped = self.models.apply(space, batch.plan)
        high = max(batch.high_watermark, batch.new_offset + 1)
        self.models.strings[space.offset] = _bytes(batch.new_offset)
        progress = self.models.hashes[space.progress]
        progress[ProgressField.APPLIED] = _bytes(batch.new_offset)
        progress[ProgressField.HIGH_WATERMARK] = _bytes(high)
        progress[ProgressField.UPDATED_MS] = _bytes(_now_ms())
        if batch.new_offset + 1 >= high:
            progress[ProgressField.CAUGHT_UP] = b"1"
        return Outcome(True, batch.new_offset, skipped)


def _now_ms() -> int:
    return int(time.time() * 1000)
