"""Ingest's memory of (source, id): the port and its Redis adapter (twin: tests/twins/ingest.py).

A request first *claims* each new event (a pending record, set only if absent, that expires
after `pending_ttl_ms`), then publishes, then *completes* the claims of the events Kafka
acknowledged, with their position, and *releases* the claims of the events Kafka never got.
A claim whose event has an unknown outcome (handed to Kafka, not acknowledged in time) is
*extended* until the outcome is known, then completed or released. A resubmission finds
the completed record and gets the same answer without a second append; the same identity
with other content is a conflict. Completed records expire after `ttl_s`: see the README
("Idempotency") for why that bound is safe.

Complete, release and extend act on a key only while it still holds this request's claim
(compare-and-set in Lua), so a late outcome never overwrites another request's record.
Every call is bounded by `op_timeout_s`; a store that does not answer in time is
"unavailable", which the service turns into a 503 (so is a Redis Cluster with a slot
without a master, while a failover is under way).

On a Redis Cluster a script may touch the keys of one slot only, and a record's key is its
identity's own (`keyspace.idempotency`), so that a retry finds it from the identity alone: a
call sends one script per slot of its keys, all in one pipeline (redis-py sends each master
its share, the masters at once). Each script acts on its keys in order, as one call does on
one server, and keys of one identity are on one slot: what a call does is the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from chancery import keyspace
from chancery.keyspace import IdempotencyRecord
from services.platform.redis import REDIS_FAILED, RedisClient, key_slot

Replies = list[tuple[list[int], Any]]
"""A script's replies: per call, the indexes of the keys it was given, and its reply."""

# Claim each key only if absent; answer, per key, nil (claimed) or the record already there.
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[i + 1], 'NX', 'PX', ARGV[1]) then
    out[i] = false
  else
    out[i] = redis.call('GET', key)
  end
end
return out
"""

# Complete each key that still holds this request's claim, or that no longer exists (the claim
# expired and nobody took it since): ARGV = ttl_s, then per key the claim and the record.
_COMPLETE = """
local n = 0
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current == false or current == ARGV[2 * i] then
    redis.call('SET', key, ARGV[2 * i + 1], 'EX', ARGV[1])
    n = n + 1
  end
end
return n
"""

# Push back the expiry of each key that still holds this request's claim.
_EXTEND = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    n = n + 1
  end
end
return n
"""

# Delete each key only if it still holds this request's pending claim.
_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


class IdempotencyUnavailableError(Exception):
    """The store could not be reached; nothing about the claims is known."""


class Claim(NamedTuple):
    """A request's hold on one identity (a tuple: ingest makes one per event it publishes)."""

    event_key: str
    record: IdempotencyRecord  # state "pending", carrying this request's nonce
    stored: bytes  # `record.encode()`, made once: a claim goes to the store more than once

    @classmethod
    def of(cls, event_key: str, record: IdempotencyRecord) -> Claim:
        return cls(event_key, record, record.encode())


class IdempotencyStore(Protocol):
    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        """Per claim: None when claimed now, else the record that was already there."""
        ...

    async def complete(self, done: Sequence[tuple[Claim, IdempotencyRecord]]) -> None:
        """Replace each claim by its final record (only where the claim is still ours)."""
        ...

    async def release(self, claims: Sequence[Claim]) -> None: ...

    async def extend(self, claims: Sequence[Claim]) -> None:
        """Keep pending claims alive while their outcome is unknown."""
        ...

    async def lookup(self, event_keys: Sequence[str]) -> list[IdempotencyRecord | None]: ...

    async def is_ready(self) -> tuple[bool, str]: ...


class RedisIdempotencyStore:
    def __init__(
        self, redis: RedisClient, *, ttl_s: int, pending_ttl_ms: int, op_timeout_s: float = 2.0
    ) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._pending_ttl_ms = pending_ttl_ms
        self._op_timeout_s = op_timeout_s
        self._claim = redis.register_script(_CLAIM)
        self._complete = redis.register_script(_COMPLETE)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)

    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        if not claims:
            return []
        keys = [keyspace.idempotency(c.event_key) for c in claims]
        raw: list[Any] = [None] * len(claims)
        async with self._bounded("claim"):
            calls = await self._run(
                self._claim, keys, [self._pending_ttl_ms], [(c.stored,) for c in claims]
            )
        for at, replies in calls:
            for i, reply in zip(at, replies, strict=True):
                raw[i] = reply
        # A record that is this very claim was set by this call: sent again after a lost
        # reply (a connection reset, a failover), the script found what it had set.
        return [
            IdempotencyRecord.decode(r) if r and r != c.stored else None
            for r, c in zip(raw, claims, strict=True)
        ]

    async def complete(self, done: Sequence[tuple[Claim, IdempotencyRecord]]) -> None:
        if not done:
            return
        keys = [keyspace.idempotency(claim.event_key) for claim, _ in done]
        args = [(claim.stored, record.encode()) for claim, record in done]
        async with self._bounded("complete"):
            await self._run(self._complete, keys, [self._ttl_s], args)

    async def extend(self, claims: Sequence[Claim]) -> None:
        if not claims:
            return
        keys = [keyspace.idempotency(c.event_key) for c in claims]
        async with self._bounded("extend"):
            await self._run(
                self._extend, keys, [self._pending_ttl_ms], [(c.stored,) for c in claims]
            )

    async def release(self, claims: Sequence[Claim]) -> None:
        if not claims:
            return
        keys = [keyspace.idempotency(c.event_key) for c in claims]
        async with self._bounded("release"):
            await self._run(self._release, keys, [], [(c.stored,) for c in claims])

    async def lookup(self, event_keys: Sequence[str]) -> list[IdempotencyRecord | None]:
        if not event_keys:
            return []
        keys = [keyspace.idempotency(k) for k in event_keys]
        async with self._bounded("lookup"):
            if isinstance(self._redis, RedisCluster):
                raw = await self._redis.mget_nonatomic(keys)  # one MGET per slot
            else:
                raw = await self._redis.mget(keys)
        return [IdempotencyRecord.decode(r) if r else None for r in raw]

    async def _run(
        self,
        script: AsyncScript,
        keys: list[str],
        shared: list[Any],
        per_key: list[tuple[Any, ...]],
    ) -> Replies:
        """`script` over `keys`, its ARGV `shared` then each key's `per_key` arguments: one
        call on one server; on a cluster, one call per slot, pipelined (see the module doc)."""
        if not isinstance(self._redis, RedisCluster):
            args = [*shared, *(a for key_args in per_key for a in key_args)]
            return [(list(range(len(keys))), await script(keys=keys, args=args))]
        by_slot: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_slot.setdefault(key_slot(key.encode()), []).append(i)
        calls = [
            (at, [keys[i] for i in at], [*shared, *(a for i in at for a in per_key[i])])
            for at in by_slot.values()
        ]
        replies = await self._pipelined(script, calls)
        if any(isinstance(r, NoScriptError) for r in replies):
            await self._redis.script_load(script.script)  # on every master; then again
            replies = await self._pipelined(script, calls)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [(at, reply) for (at, _, _), reply in zip(calls, replies, strict=True)]

    async def _pipelined(
        self, script: AsyncScript, calls: list[tuple[list[int], list[str], list[Any]]]
    ) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def is_ready(self) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(self._op_timeout_s):
                await self._redis.ping()
        except REDIS_FAILED as exc:  # TimeoutError is an OSError
            return False, f"Redis unavailable: {exc or type(exc).__name__}"
        return True, "Redis answers"

    @asynccontextmanager
    async def _bounded(self, what: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._op_timeout_s):
                yield
        except TimeoutError as exc:
            raise IdempotencyUnavailableError(
                f"Redis did not answer {what} within {self._op_timeout_s:g}s"
            ) from exc
        except REDIS_FAILED as exc:
            raise IdempotencyUnavailableError(f"Redis: {exc}") from exc


T = TypeVar("T")
R = TypeVar("R")


class _CoalescedCall(Generic[T, R]):
    """Merges concurrent calls into one: a group commit, with no added delay.

    The first caller's items go at once; callers that arrive while that call is in flight
    queue, and all of them go together in the next call. Under load, N concurrent requests
    cost one round trip instead of N; alone, a request costs what it did.
    """

    def __init__(self, call: Callable[[list[T]], Awaitable[list[R]]], max_items: int) -> None:
        self._call = call
        self._max_items = max_items
        self._queue: list[tuple[Sequence[T], asyncio.Future[list[R]]]] = []
        self._queued = 0
        self._drainer: asyncio.Task[None] | None = None

    async def __call__(self, items: Sequence[T]) -> list[R]:
        if not items:
            return []
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, future))
        self._queued += len(items)
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name="idempotency-group-call")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group: list[tuple[Sequence[T], asyncio.Future[list[R]]]] = []
                size = 0
                while self._queue and (
                    not group or size + len(self._queue[0][0]) <= self._max_items
                ):
                    items, future = self._queue.pop(0)
                    group.append((items, future))
                    size += len(items)
                self._queued -= size
                flat = [item for items, _ in group for item in items]
                try:
                    results = await self._call(flat)
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the group
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for items, future in group:
                    if not future.done():
                        future.set_result(results[start : start + len(items)])
                    start += len(items)
        finally:
            self._drainer = None


class CoalescingIdempotencyStore:
    """Any store, with concurrent calls of each kind merged into one call of the store.

    The Lua scripts act key by key, in order, so a merged claim behaves exactly as the calls
    one after the other would: two requests claiming the same key in one group get "claimed"
    and "pending, held by the other" respectively.
    """

    def __init__(self, inner: IdempotencyStore, *, max_items: int = 5000) -> None:
        self._inner = inner
        self._claim = _CoalescedCall(inner.claim, max_items)
        self._lookup = _CoalescedCall(inner.lookup, max_items)
        self._complete = _CoalescedCall(self._complete_all, max_items)
        self._release = _CoalescedCall(self._release_all, max_items)
        self._extend = _CoalescedCall(self._extend_all, max_items)

    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        return await self._claim(claims)

    async def lookup(self, event_keys: Sequence[str]) -> list[IdempotencyRecord | None]:
        return await self._lookup(event_keys)

    async def complete(self, done: Sequence[tuple[Claim, IdempotencyRecord]]) -> None:
        await self._complete(done)

    async def release(self, claims: Sequence[Claim]) -> None:
        await self._release(claims)

    async def extend(self, claims: Sequence[Claim]) -> None:
        await self._extend(claims)

    async def is_ready(self) -> tuple[bool, str]:
        return await self._inner.is_ready()

    async def _complete_all(self, done: list[tuple[Claim, IdempotencyRecord]]) -> list[None]:
        await self._inner.complete(done)
        return [None] * len(done)

    async def _release_all(self, claims: list[Claim]) -> list[None]:
        await self._inner.release(claims)
        return [None] * len(claims)

    async def _extend_all(self, claims: list[Claim]) -> list[None]:
        await self._inner.extend(claims)
        return [None] * len(claims)
