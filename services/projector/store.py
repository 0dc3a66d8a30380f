"""The projector's read-model store: the port its loop writes through, and the Redis adapter.

`apply` runs, for each partition batch, one Lua script (`apply_script`) that checks the
partition's stored offset still equals what this projector last wrote (or read at
assignment), then performs every write of the batch and moves the offset. Either all of it
happens or none: a crash before the script leaves nothing, a crash after it leaves
everything, and a zombie whose partition was reassigned is fenced by the offset check. Every
key the script touches is passed in KEYS (`step_keys`) and shares the partition's hash tag,
so the step runs on one slot of a Redis Cluster too. Several partitions' scripts go in one
pipeline: each is atomic on its own, and each is fenced on its own (on a cluster, redis-py's
pipeline sends each node its share, the nodes in parallel).

On a cluster the version pointer, the version counter and each version's meta hash are keys
of their own, each on its own slot; every command on them touches one key. A master that
fails over may lose its last writes (replication is asynchronous), but never part of a step:
see the README's Guarantees.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import NoScriptError

from chancery import keyspace
from chancery.keyspace import MetaField, PartitionSpace, ProgressField, VersionState
from services.platform.redis import RedisClient, with_native_packing

from .apply_script import APPLY_SCRIPT
from .plan import WritePlan

logger = logging.getLogger(__name__)

__all__ = [
    "Batch",
    "Outcome",
    "ReadModelWriter",
    "RedisReadModelWriter",
    "VersionInfo",
    "step_keys",
    "with_native_packing",
]

APPLY_SHA = hashlib.sha1(APPLY_SCRIPT.encode(), usedforsecurity=False).hexdigest()
"""The name Redis gives the apply script (the SHA-1 of its text: a name, not a safeguard)."""


@dataclass(frozen=True)
class Batch:
    """One partition's atomic step: its writes, and the offset they move it to."""

    space: PartitionSpace
    expected: int | None  # the stored offset the step starts from (None: nothing applied)
    new_offset: int
    high_watermark: int
    plan: WritePlan


@dataclass(frozen=True)
class Outcome:
    applied: bool
    stored: int | None  # when fenced: the offset found instead of the expected one
    stream_skipped: int = 0


@dataclass(frozen=True)
class VersionInfo:
    version: int
    state: str  # a keyspace.VersionState
    partitions: int
    layout: str = keyspace.LAYOUT  # keyspace.LAYOUT, or another release's


class ReadModelWriter(Protocol):
    """What the projector's loop needs of the read-model store: the served version, each
    partition's stored offset, and the atomic write of a batch."""

    async def active_version(self) -> int | None:
        """The version the API serves (None: no pointer, Redis is new or was emptied)."""
        ...

    async def ensure_active_version(self, partitions: int, *, above: int = 0) -> int:
        """The served version; when there is none, a new one (numbered above `above`)."""
        ...

    async def version_info(self, version: int) -> VersionInfo | None: ...

    async def mark_ready_if_caught_up(self, version: int, partitions: int) -> bool:
        """Set the version ready once every partition has caught up; True when ready."""
        ...

    async def stored_offsets(self, spaces: Sequence[PartitionSpace]) -> list[int | None]:
        """Each partition's last applied offset (None: nothing applied)."""
        ...

    async def mark_caught_up(self, space: PartitionSpace, high_watermark: int) -> None:
        """For a partition with nothing (more) to apply at assignment time."""
        ...

    async def apply(self, batches: Sequence[Batch]) -> list[Outcome]:
        """Each batch's writes and offset move, atomically per batch, each fenced on the
        offset it starts from."""
        ...


def step_keys(batch: Batch) -> list[str]:
    """Every key the apply script touches for `batch`, in the order KEYS holds them: the
    partition's offset, progress and stream, then the plan's keys (all in its hash tag)."""
    space = batch.space
    return [space.offset, space.progress, space.stream, *batch.plan.keys]


class RedisReadModelWriter:
    def __init__(self, redis: RedisClient, *, topic: str, stream_max_len: int = 1_000_000) -> None:
        self._redis = redis
        self._topic = topic
        self._stream_max_len = stream_max_len
        self._script_loaded = False

    @property
    def redis(self) -> RedisClient:
        return self._redis

    # --- versions ---------------------------------------------------------------------------

    async def active_version(self) -> int | None:
        raw = await self._redis.get(keyspace.ACTIVE_VERSION)
        return int(raw) if raw is not None else None

    async def ensure_active_version(self, partitions: int, *, above: int = 0) -> int:
        """The served version; when there is none (a new or emptied Redis), start a new one.

        The new version is `building`: the API answers 503 until every partition caught up.
        It is numbered above `above` (the version this process served before Redis was
        emptied, which took the version counter with it), so a number is never reused.
        """
        active = await self.active_version()
        if active is not None:
            info = await self.version_info(active)
            if info is None or info.layout == keyspace.LAYOUT:
                return active
            return await self._replace_other_layout(active, info, partitions)
        candidate = await self.new_version(partitions, above=above)
        if await self._redis.set(keyspace.ACTIVE_VERSION, candidate, nx=True):
            logger.warning(
                "no read models found: building version %d from the start of the log", candidate
            )
            return candidate
        # Another projector instance initialised it first: drop our unused version's meta.
        await self._redis.delete(keyspace.version_meta(candidate))
        active = await self.active_version()
        if active is None:  # emptied again in between: try once more
            return await self.ensure_active_version(partitions, above=above)
        return active

    async def _replace_other_layout(self, active: int, info: VersionInfo, partitions: int) -> int:
        """The served version is of another layout: its keys mean something else here and
        are never read. Build a new version from the start of the log and serve it instead
        (the API answers 503 until it has caught up, as it could not read the old one)."""
        candidate = await self.new_version(partitions, above=active)
        if await self._redis.eval(_SWAP_POINTER, 1, keyspace.ACTIVE_VERSION, active, candidate):
            logger.warning(
                "the served read models (version %d) are of layout %s, this release writes "
                "layout %s: building version %d from the start of the log (drop version %d "
                "once it is served: `chancery rebuild` does both at once)",
                active,
                info.layout,
                keyspace.LAYOUT,
                candidate,
                active,
            )
            return candidate
        await self._redis.delete(keyspace.version_meta(candidate))  # another instance did
        return await self.ensure_active_version(partitions, above=candidate)

    async def new_version(self, partitions: int, *, above: int = 0) -> int:
        version = int(await self._redis.incr(keyspace.VERSION_COUNTER))
        if version <= above:
            version = int(await self._redis.incrby(keyspace.VERSION_COUNTER, above + 1 - version))
        await self._redis.hset(
            keyspace.version_meta(version),
            mapping={
                MetaField.LAYOUT: keyspace.LAYOUT,
                MetaField.STATE: VersionState.BUILDING,
                MetaField.PARTITIONS: partitions,
                MetaField.TOPIC: self._topic,
                MetaField.CREATED_MS: int(time.time() * 1000),
            },
        )
        return version

    async def version_info(self, version: int) -> VersionInfo | None:
        meta = await self._redis.hgetall(keyspace.version_meta(version))
        if not meta:
            return None
        return VersionInfo(
            version=version,
            state=_text(meta[MetaField.STATE.encode()]),
            partitions=int(meta[MetaField.PARTITIONS.encode()]),
            layout=keyspace.layout_of(meta),
        )

    async def mark_ready_if_caught_up(self, version: int, partitions: int) -> bool:
        """Set the version `ready` once every partition has caught up; True when ready."""
        meta_key = keyspace.version_meta(version)
        if await self._redis.hget(meta_key, MetaField.STATE) == VersionState.READY.encode():
            return True
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in range(partitions):
                pipe.hget(PartitionSpace(version, p).progress, ProgressField.CAUGHT_UP)
            flags = await pipe.execute()
        if all(f == b"1" for f in flags):
            await self._redis.hset(
                meta_key,
                mapping={
                    MetaField.STATE: VersionState.READY,
                    MetaField.READY_MS: int(time.time() * 1000),
                },
            )
            logger.info("read models version %d is ready", version)
            return True
        return False

    async def activate(self, version: int) -> int | None:
        """Point the API at `version` in one command; returns the version it replaced."""
        old = await self._redis.set(keyspace.ACTIVE_VERSION, version, get=True)
        return int(old) if old is not None else None

    async def drop_version(self, version: int, *, batch: int = 1000) -> int:
        """Delete every key of a version no longer served (SCAN by our own prefix)."""
        removed = 0
        pattern = keyspace.version_prefix(version) + "*"
        async for chunk in _chunks(self._redis.scan_iter(match=pattern, count=batch), batch):
            removed += int(await self._redis.unlink(*chunk))
        return removed

    # --- offsets and the atomic write ------------------------------------------------------------

    async def stored_offsets(self, spaces: Sequence[PartitionSpace]) -> list[int | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for space in spaces:
                pipe.get(space.offset)
            raw = await pipe.execute()
        return [int(r) if r is not None else None for r in raw]

    async def mark_caught_up(self, space: PartitionSpace, high_watermark: int) -> None:
        """For a partition with nothing (more) to apply at assignment time."""
        await self._redis.hset(
            space.progress,
            mapping={
                ProgressField.CAUGHT_UP: 1,
                ProgressField.HIGH_WATERMARK: high_watermark,
                ProgressField.UPDATED_MS: int(time.time() * 1000),
            },
        )

    async def apply(self, batches: Sequence[Batch]) -> list[Outcome]:
        """Each batch's writes and offset move, atomically per batch, in one round trip."""
        if not batches:
            return []
        now_ms = int(time.time() * 1000)
        replies = await self._run_scripts([self._script_call(b, now_ms) for b in batches])
        outcomes = []
        for reply in replies:
            if int(reply[0]) == 1:
                outcomes.append(Outcome(True, int(reply[1]), int(reply[2])))
            else:
                stored = reply[1]
                outcomes.append(Outcome(False, int(stored) if stored not in (b"", "") else None))
        return outcomes

    def _script_call(self, b: Batch, now_ms: int) -> list[str | bytes | int]:
        keys = step_keys(b)
        call: list[str | bytes | int] = ["EVALSHA", APPLY_SHA, len(keys), *keys]
        call += (
            "" if b.expected is None else b.expected,
            b.new_offset,
            max(b.high_watermark, b.new_offset + 1),
            now_ms,
            self._stream_max_len,
        )
        call += b.plan.script_args()
        return call

    async def _run_scripts(self, calls: list[list[str | bytes | int]]) -> list[Any]:
        """The replies of the script calls, sent in one pipeline.

        The script is loaded once, not checked before every pipeline as redis-py's `Script`
        does (a round trip that would hold each round's scripts back); when Redis answers
        NOSCRIPT (it restarted, or its scripts were flushed) the call ran nothing, so it is
        loaded again and those calls are sent again. (On a cluster the script is loaded on
        every master; a replica promoted since has never seen it.)
        """
        if not self._script_loaded:
            await self._load_script()
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.execute_command(*call)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            await self._load_script()
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in missing:
                    pipe.execute_command(*calls[i])
                for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                    replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _load_script(self) -> None:
        sha = await self._redis.script_load(APPLY_SCRIPT)
        if _text(sha) != APPLY_SHA:  # pragma: no cover - SHA-1 of the same text
            raise RuntimeError("Redis loaded the apply script under another digest")
        self._script_loaded = True


async def _chunks(items: AsyncIterator[bytes], size: int) -> AsyncIterator[list[bytes]]:
    chunk: list[bytes] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_SWAP_POINTER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
"""Move the pointer from ARGV[1] to ARGV[2] only if it still names ARGV[1]."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
