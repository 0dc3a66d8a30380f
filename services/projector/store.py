"""The projector's Redis adapter: versions, offsets, and the one atomic write per batch.

`apply` runs one Lua script that checks the partition's stored offset still equals what
this projector last wrote (or read at assignment), then performs every write of the batch
and moves the offset. Either all of it happens or none: a crash before the script leaves
nothing, a crash after it leaves everything, and a zombie whose partition was reassigned
is fenced by the offset check. Every key the script touches is passed in KEYS and shares
the partition's hash tag, so this holds on Redis Cluster as well.

A write plan must not fail inside the script (Redis does not roll back a script that
errors half-way): the planner only emits commands that cannot fail on the keys it owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from chancery import keyspace
from chancery.keyspace import PartitionSpace

logger = logging.getLogger(__name__)

Command = tuple[str | bytes | int, ...]

_APPLY = """
local stored = redis.call('GET', KEYS[1])
if (stored or '') ~= ARGV[1] then
  return {0, stored or ''}
end
local i = 6
for c = 1, tonumber(ARGV[5]) do
  local n = tonumber(ARGV[i])
  local name = ARGV[i + 1]
  if name == 'HINCRBY_DROP0' then
    if redis.call('HINCRBY', ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]) == 0 then
      redis.call('HDEL', ARGV[i + 2], ARGV[i + 3])
    end
  else
    redis.call(unpack(ARGV, i + 1, i + n))
  end
  i = i + n + 1
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'applied', ARGV[2], 'high_watermark', ARGV[3], 'updated_ms', ARGV[4])
if tonumber(ARGV[2]) + 1 >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[2], 'caught_up', '1')
end
return {1, ARGV[2]}
"""

# Lua's unpack() is bounded by the C stack (LUAI_MAXCSTACK = 8000 slots).
MAX_COMMAND_ARGS = 7000


@dataclass(frozen=True)
class Fenced:
    """The stored offset was not the expected one: someone else wrote this partition."""

    stored: int | None


@dataclass(frozen=True)
class VersionInfo:
    version: int
    state: str  # "building" | "ready"
    partitions: int


class RedisReadModelWriter:
    def __init__(self, redis: Redis, *, topic: str) -> None:
        self._redis = redis
        self._topic = topic
        self._apply = redis.register_script(_APPLY)

    @property
    def redis(self) -> Redis:
        return self._redis

    # --- versions ---------------------------------------------------------------------------

    async def active_version(self) -> int | None:
        raw = await self._redis.get(keyspace.ACTIVE_VERSION)
        return int(raw) if raw is not None else None

    async def ensure_active_version(self, partitions: int) -> int:
        """The served version; when there is none (a new or emptied Redis), start version 1+.

        The new version is `building`: the API answers 503 until every partition caught up.
        """
        active = await self.active_version()
        if active is not None:
            return active
        candidate = await self.new_version(partitions)
        if await self._redis.set(keyspace.ACTIVE_VERSION, candidate, nx=True):
            logger.warning(
                "no read models found: building version %d from the start of the log", candidate
            )
            return candidate
        # Another projector instance initialised it first.
        active = await self.active_version()
        assert active is not None
        return active

    async def new_version(self, partitions: int) -> int:
        version = int(await self._redis.incr(keyspace.VERSION_COUNTER))
        await self._redis.hset(
            keyspace.version_meta(version),
            mapping={
                "state": "building",
                "partitions": partitions,
                "topic": self._topic,
                "created_ms": int(time.time() * 1000),
            },
        )
        return version

    async def version_info(self, version: int) -> VersionInfo | None:
        meta = await self._redis.hgetall(keyspace.version_meta(version))
        if not meta:
            return None
        return VersionInfo(
            version=version,
            state=_text(meta[b"state"]),
            partitions=int(meta[b"partitions"]),
        )

    async def mark_ready_if_caught_up(self, version: int, partitions: int) -> bool:
        """Set the version `ready` once every partition has caught up; True when ready."""
        meta_key = keyspace.version_meta(version)
        if await self._redis.hget(meta_key, "state") == b"ready":
            return True
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in range(partitions):
                pipe.hget(PartitionSpace(version, p).progress, "caught_up")
            flags = await pipe.execute()
        if all(f == b"1" for f in flags):
            await self._redis.hset(
                meta_key, mapping={"state": "ready", "ready_ms": int(time.time() * 1000)}
            )
            logger.info("read models version %d is ready", version)
            return True
        return False

    async def activate(self, version: int) -> int | None:
        """Point the API at `version`; returns the version it replaced."""
        old = await self._redis.getset(keyspace.ACTIVE_VERSION, version)
        return int(old) if old is not None else None

    async def drop_version(self, version: int, *, batch: int = 1000) -> int:
        """Delete every key of a version no longer served (SCAN by our own prefix)."""
        removed = 0
        pattern = keyspace.version_prefix(version) + "*"
        async for chunk in _chunks(self._redis.scan_iter(match=pattern, count=batch), batch):
            removed += int(await self._redis.unlink(*chunk))
        return removed

    # --- offsets and the atomic write ------------------------------------------------------------

    async def stored_offset(self, space: PartitionSpace) -> int | None:
        raw = await self._redis.get(space.offset)
        return int(raw) if raw is not None else None

    async def mark_caught_up(self, space: PartitionSpace, high_watermark: int) -> None:
        """For a partition with nothing (more) to apply at assignment time."""
        await self._redis.hset(
            space.progress,
            mapping={
                "caught_up": 1,
                "high_watermark": high_watermark,
                "updated_ms": int(time.time() * 1000),
            },
        )

    async def update_high_watermark(self, space: PartitionSpace, high_watermark: int) -> None:
        await self._redis.hset(space.progress, "high_watermark", high_watermark)

    async def apply(
        self,
        space: PartitionSpace,
        *,
        expected: int | None,
        new_offset: int,
        high_watermark: int,
        commands: Sequence[Command],
        keys: Sequence[str],
    ) -> Fenced | None:
        """Run the batch's writes and move the offset, atomically; None when applied."""
        args: list[str | bytes | int] = [
            "" if expected is None else expected,
            new_offset,
            max(high_watermark, new_offset + 1),
            int(time.time() * 1000),
            len(commands),
        ]
        for command in commands:
            if len(command) > MAX_COMMAND_ARGS:
                raise ValueError(f"a command of {len(command)} arguments exceeds the Lua limit")
            args.append(len(command))
            args.extend(command)
        result = await self._apply(keys=[space.offset, space.progress, *keys], args=args)
        if int(result[0]) == 1:
            return None
        stored = result[1]
        return Fenced(int(stored) if stored not in (b"", "") else None)


async def _chunks(items: AsyncIterator[bytes], size: int) -> AsyncIterator[list[bytes]]:
    chunk: list[bytes] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
