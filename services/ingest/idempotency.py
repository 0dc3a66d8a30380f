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
Concurrent requests' calls are merged (`CoalescingIdempotencyStore`); with Redis, the
completions and the claims of one moment share one script (`_COMPLETE_THEN_CLAIM`).
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
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

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

# One round of the group commit (CoalescingIdempotencyStore): first _COMPLETE on the first
# ARGV[3] keys, then _CLAIM on the rest, answering for those. ARGV = pending_ttl_ms, ttl_s,
# the number of completed keys, then per completed key its claim and record, then per
# claimed key its pending record.
_COMPLETE_THEN_CLAIM = """
local n = tonumber(ARGV[3])
for i = 1, n do
  local current = redis.call('GET', KEYS[i])
  if current == false or current == ARGV[2 + 2 * i] then
    redis.call('SET', KEYS[i], ARGV[3 + 2 * i], 'EX', ARGV[2])
  end
end
local out = {}
local first = 3 + n  -- ARGV[first + i] is the pending record of KEYS[i]
for i = n + 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[first + i], 'NX', 'PX', ARGV[1]) then
    out[i - n] = false
  else
    out[i - n] = redis.call('GET', KEYS[i])
  end
end
return out
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
        self._complete_then_claim = redis.register_script(_COMPLETE_THEN_CLAIM)
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

    async def complete_then_claim(
        self, done: Sequence[tuple[Claim, IdempotencyRecord]], claims: Sequence[Claim]
    ) -> list[IdempotencyRecord | None]:
        """`complete(done)` then `claim(claims)`, in one script: one round trip."""
        if not done:
            return await self.claim(claims)
        if not claims:
            await self.complete(done)
            return []
        if isinstance(self._redis, RedisCluster):
            # The keys span slots, and one script holds the keys of one slot: the two calls
            # in turn, each one script per slot (completions still precede the claims).
            await self.complete(done)
            return await self.claim(claims)
        keys: list[str] = []
        args: list[bytes | int] = [self._pending_ttl_ms, self._ttl_s, len(done)]
        for claim, record in done:
            keys.append(keyspace.idempotency(claim.event_key))
            args.append(claim.stored)
            args.append(record.encode())
        keys += [keyspace.idempotency(c.event_key) for c in claims]
        args += [c.stored for c in claims]
        async with self._bounded("complete and claim"):
            raw = await self._complete_then_claim(keys=keys, args=args)
        return [IdempotencyRecord.decode(r) if r else None for r in raw]

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


@runtime_checkable
class GroupCommitStore(IdempotencyStore, Protocol):
    """A store that can complete some claims and make others in one call."""

    async def complete_then_claim(
        self, done: Sequence[tuple[Claim, IdempotencyRecord]], claims: Sequence[Claim]
    ) -> list[IdempotencyRecord | None]: ...


_Completion = tuple[Claim, IdempotencyRecord]
_Round = tuple[
    Sequence[_Completion], Sequence[Claim], asyncio.Future[list[IdempotencyRecord | None]]
]


class _CompleteThenClaim:
    """Completions and claims of concurrent requests merged into one call per round.

    A request claims its events before it publishes and completes them after, so under load
    each round carries the completions of requests whose events Kafka just acknowledged
    and the claims of requests just arrived: one round trip instead of two. Completions go
    first, so a claim of an identity completed in the same round finds it done.
    """

    def __init__(self, inner: GroupCommitStore, max_items: int) -> None:
        self._inner = inner
        self._max_items = max_items
        self._queue: list[_Round] = []
        self._drainer: asyncio.Task[None] | None = None

    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        return await self._call((), claims) if claims else []

    async def complete(self, done: Sequence[_Completion]) -> None:
        if done:
            await self._call(done, ())

    async def _call(
        self, done: Sequence[_Completion], claims: Sequence[Claim]
    ) -> list[IdempotencyRecord | None]:
        future: asyncio.Future[list[IdempotencyRecord | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append((done, claims, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name="idempotency-group-commit")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group: list[_Round] = []
                size = 0
                while self._queue and (
                    not group
                    or size + len(self._queue[0][0]) + len(self._queue[0][1]) <= self._max_items
                ):
                    entry = self._queue.pop(0)
                    group.append(entry)
                    size += len(entry[0]) + len(entry[1])
                done = [d for entry in group for d in entry[0]]
                claims = [c for entry in group for c in entry[1]]
                try:
                    results = await self._inner.complete_then_claim(done, claims)
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the round
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for _, mine, future in group:
                    if not future.done():
                        future.set_result(results[start : start + len(mine)])
                    start += len(mine)
        finally:
            self._drainer = None


class CoalescingIdempotencyStore:
    """Any store, with concurrent calls of each kind merged into one call of the store; for a
    store that can (`GroupCommitStore`), claims and completions share their calls too.

    The Lua scripts act key by key, in order, so a merged claim behaves exactly as the calls
    one after the other would: two requests claiming the same key in one group get "claimed"
    and "pending, held by the other" respectively.
    """

    def __init__(self, inner: IdempotencyStore, *, max_items: int = 5000) -> None:
        self._inner = inner
        self._lookup = _CoalescedCall(inner.lookup, max_items)
        self._release = _CoalescedCall(self._release_all, max_items)
        self._extend = _CoalescedCall(self._extend_all, max_items)
        self._group: _CompleteThenClaim | None = None
        self._claim = _CoalescedCall(inner.claim, max_items)
        self._complete = _CoalescedCall(self._complete_all, max_items)
        if isinstance(inner, GroupCommitStore):
            self._group = _CompleteThenClaim(inner, max_items)

    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        if self._group is not None:
            return await self._group.claim(claims)
        return await self._claim(claims)

    async def lookup(self, event_keys: Sequence[str]) -> list[IdempotencyRecord | None]:
        return await self._lookup(event_keys)

    async def complete(self, done: Sequence[tuple[Claim, IdempotencyRecord]]) -> None:
        if self._group is not None:
            await self._group.complete(done)
        else:
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
