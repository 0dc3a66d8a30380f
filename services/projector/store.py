"""The projector's Redis adapter: versions, offsets, and the one atomic write per batch.

`apply` runs, for each partition batch, one Lua script that checks the partition's stored
offset still equals what this projector last wrote (or read at assignment), then performs
every write of the batch and moves the offset. Either all of it happens or none: a crash
before the script leaves nothing, a crash after it leaves everything, and a zombie whose
partition was reassigned is fenced by the offset check. Every key the script touches is
passed in KEYS and shares the partition's hash tag, so this holds on Redis Cluster as well.

Redis does not roll back a script that fails half-way, so the script cannot be allowed to
fail once it has written:
- it declares itself with a shebang (`#!lua`, no `allow-oom`): Redis refuses it whole, before
  it runs, when it is out of memory, instead of failing its first write;
- it checks the whole plan (operation names, argument counts, key indices) before its
  first write, and answers an error, having written nothing, if the plan is malformed;
- the planner emits only operations that cannot fail on keys of the right type that only
  the projector writes (no empty variadic command, counters only ever written by HINCRBY);
- stream ids must grow: an XADD whose id is not above the stream's last one (possible only
  if someone removed the offset key by hand) is skipped and counted, never an error.
Several partitions' scripts go in one pipeline: each is atomic on its own, and each is
fenced on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from chancery import keyspace
from chancery.keyspace import PartitionSpace
from services.platform.redis import with_native_packing

from .plan import WritePlan

logger = logging.getLogger(__name__)

__all__ = ["Batch", "Outcome", "RedisReadModelWriter", "VersionInfo", "with_native_packing"]

_APPLY = """#!lua
local stored = redis.call('GET', KEYS[1])
if (stored or '') ~= ARGV[1] then
  return {0, stored or '', 0}
end
local n = #ARGV
local nkeys = #KEYS
local arity = {I = 4, T = 3, K = 2}
local variadic = {H = 'HSET', D = 'HDEL', R = 'ZREM', S = 'SADD', Z = 'ZADD'}
local i = 6
while i <= n do
  local op = ARGV[i]
  if op == 'X' then
    local count = tonumber(ARGV[i + 1])
    if count == nil or count < 1 then return redis.error_reply('plan: bad stream entries') end
    for j = i + 2, i + 4 * count - 2, 4 do
      if not tonumber(ARGV[j]) then return redis.error_reply('plan: bad stream offset') end
    end
    i = i + 2 + 4 * count
  elseif op == 'M' then
    local nk = tonumber(ARGV[i + 1])
    if nk == nil or nk < 1 then return redis.error_reply('plan: bad key count') end
    for j = i + 2, i + 1 + nk do
      local k = tonumber(ARGV[j])
      if k == nil or k < 4 or k > nkeys then return redis.error_reply('plan: bad key index') end
    end
    local count = tonumber(ARGV[i + 2 + nk])
    if count == nil or count < 1 or count > 1000 then
      return redis.error_reply('plan: bad member count')
    end
    i = i + 3 + nk + count
  else
    local k = tonumber(ARGV[i + 1])
    if k == nil or k < 4 or k > nkeys then return redis.error_reply('plan: bad key index') end
    if arity[op] then
      i = i + arity[op]
    elseif variadic[op] then
      local count = tonumber(ARGV[i + 2])
      if count == nil or count < 1 or count > 1000 or (op == 'Z' and count % 2 == 1) then
        return redis.error_reply('plan: bad member count')
      end
      i = i + 3 + count
    else
      return redis.error_reply('plan: unknown operation')
    end
  end
end
if i ~= n + 1 then return redis.error_reply('plan: truncated') end

local top = -1
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if last[1] ~= nil then top = tonumber(string.match(last[1][1], '^%d+')) end
local added = false
local skipped = 0
local gathered = {}
local gathered_n = {}
local gathered_keys = {}
i = 6
while i <= n do
  local op = ARGV[i]
  if op == 'X' then
    local final = i + 4 * tonumber(ARGV[i + 1])
    for j = i + 2, final - 2, 4 do
      local offset = tonumber(ARGV[j])
      if offset > top then
        redis.call('XADD', KEYS[3], ARGV[j] .. '-1',
          'k', ARGV[j + 1], 't', ARGV[j + 2], 'a', ARGV[j + 3])
        top = offset
        added = true
      else
        skipped = skipped + 1
      end
    end
    i = final + 2
  elseif op == 'M' then
    local nk = tonumber(ARGV[i + 1])
    local first = i + 3 + nk
    local final = first - 1 + tonumber(ARGV[first - 1])
    for j = i + 2, i + 1 + nk do
      local k = tonumber(ARGV[j])
      local members = gathered[k]
      local at = gathered_n[k]
      if members == nil then
        members = {}
        at = 0
        gathered[k] = members
        gathered_keys[#gathered_keys + 1] = k
      end
      for m = first, final do
        -- the score as a string: redis.call formats a Lua number (%.17g) every time it passes one
        members[at + 1] = '0'
        members[at + 2] = ARGV[m]
        at = at + 2
      end
      gathered_n[k] = at
    end
    i = final + 1
  elseif op == 'I' then
    local key = KEYS[tonumber(ARGV[i + 1])]
    if redis.call('HINCRBY', key, ARGV[i + 2], ARGV[i + 3]) == 0 then
      redis.call('HDEL', key, ARGV[i + 2])
    end
    i = i + 4
  elseif op == 'T' then
    redis.call('SET', KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2])
    i = i + 3
  elseif op == 'K' then
    redis.call('DEL', KEYS[tonumber(ARGV[i + 1])])
    i = i + 2
  else
    local final = i + 2 + tonumber(ARGV[i + 2])
    redis.call(variadic[op], KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, final))
    i = final + 1
  end
end
for _, k in ipairs(gathered_keys) do
  local members = gathered[k]
  local count = gathered_n[k]
  for s = 1, count, 1000 do
    redis.call('ZADD', KEYS[k], unpack(members, s, math.min(s + 999, count)))
  end
end
if added then
  redis.call('XTRIM', KEYS[3], 'MAXLEN', '~', ARGV[5])
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'applied', ARGV[2], 'high_watermark', ARGV[3], 'updated_ms', ARGV[4])
if tonumber(ARGV[2]) + 1 >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[2], 'caught_up', '1')
end
return {1, ARGV[2], skipped}
"""


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
    state: str  # "building" | "ready"
    partitions: int


class RedisReadModelWriter:
    def __init__(self, redis: Redis, *, topic: str, stream_max_len: int = 1_000_000) -> None:
        self._redis = redis
        self._topic = topic
        self._stream_max_len = stream_max_len
        self._script = redis.register_script(_APPLY)  # for its digest; loaded by apply
        self._script_loaded = False

    @property
    def redis(self) -> Redis:
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
            return active
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

    async def new_version(self, partitions: int, *, above: int = 0) -> int:
        version = int(await self._redis.incr(keyspace.VERSION_COUNTER))
        if version <= above:
            version = int(await self._redis.incrby(keyspace.VERSION_COUNTER, above + 1 - version))
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
                "caught_up": 1,
                "high_watermark": high_watermark,
                "updated_ms": int(time.time() * 1000),
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
        keys = [b.space.offset, b.space.progress, b.space.stream, *b.plan.keys]
        call: list[str | bytes | int] = ["EVALSHA", self._script.sha, len(keys), *keys]
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

        The script is loaded once, not checked before every pipeline (redis-py's way, a
        round trip that made each round wait before its scripts were even sent); when Redis
        answers NOSCRIPT (it restarted, or its scripts were flushed) the call ran nothing,
        so it is loaded again and those calls are sent again.
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
        sha = await self._redis.script_load(_APPLY)
        if sha != self._script.sha:  # pragma: no cover - SHA-1 of the same text
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
