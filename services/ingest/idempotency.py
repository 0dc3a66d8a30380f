"""Ingest's memory of (source, id): the port, the Redis adapter and its in-memory twin.

A request first *claims* each new event (a pending record, set only if absent), then
publishes, then *completes* the claims of the events Kafka acknowledged, with their
position, and *releases* the rest. A resubmission finds the completed record and gets the
same answer without a second append; the same identity with other content is a conflict.
Records expire after `ttl_s`: see the README ("Idempotency") for why that bound is safe.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chancery import keyspace
from chancery.keyspace import IdempotencyRecord

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


@dataclass(frozen=True)
class Claim:
    event_key: str
    record: IdempotencyRecord  # state "pending", carrying this request's nonce


class IdempotencyStore(Protocol):
    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        """Per claim: None when claimed now, else the record that was already there."""
        ...

    async def complete(self, done: Mapping[str, IdempotencyRecord]) -> None: ...

    async def release(self, claims: Sequence[Claim]) -> None: ...

    async def lookup(self, event_keys: Sequence[str]) -> list[IdempotencyRecord | None]: ...

    async def is_ready(self) -> tuple[bool, str]: ...


class RedisIdempotencyStore:
    def __init__(self, redis: Redis, *, ttl_s: int, pending_ttl_ms: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._pending_ttl_ms = pending_ttl_ms
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        if not claims:
            return []
        keys = [keyspace.idempotency(c.event_key) for c in claims]
        args: list[bytes | int] = [self._pending_ttl_ms, *(c.record.encode() for c in claims)]
        async with _unavailable_on_error():
            raw = await self._claim(keys=keys, args=args)
        return [IdempotencyRecord.decode(r) if r else None for r in raw]

    async def complete(self, done: Mapping[str, IdempotencyRecord]) -> None:
        if not done:
            return
        async with _unavailable_on_error(), self._redis.pipeline(transaction=False) as pipe:
            for event_key, record in done.items():
                pipe.set(keyspace.idempotency(event_key), record.encode(), ex=self._ttl_s)
            await pipe.execute()

    async def release(self, claims: Sequence[Claim]) -> None:
        if not claims:
            return
        async with _unavailable_on_error():
            await self._release(
                keys=[keyspace.idempotency(c.event_key) for c in claims],
                args=[c.record.encode() for c in claims],
            )

    async def lookup(self, event_keys: Sequence[str]) -> list[IdempotencyRecord | None]:
        if not event_keys:
            return []
        async with _unavailable_on_error():
            raw = await self._redis.mget([keyspace.idempotency(k) for k in event_keys])
        return [IdempotencyRecord.decode(r) if r else None for r in raw]

    async def is_ready(self) -> tuple[bool, str]:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            return False, f"Redis unavailable: {exc}"
        return True, "Redis answers"


@asynccontextmanager
async def _unavailable_on_error() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise IdempotencyUnavailableError(f"Redis: {exc}") from exc


@dataclass
class InMemoryIdempotencyStore:
    """The twin for unit tests (no expiry)."""

    records: dict[str, IdempotencyRecord] = field(default_factory=dict)
    available: bool = True

    async def claim(self, claims: Sequence[Claim]) -> list[IdempotencyRecord | None]:
        self._check()
        out: list[IdempotencyRecord | None] = []
        for c in claims:
            existing = self.records.get(c.event_key)
            if existing is None:
                self.records[c.event_key] = c.record
            out.append(existing)
        return out

    async def complete(self, done: Mapping[str, IdempotencyRecord]) -> None:
        self._check()
        self.records.update(done)

    async def release(self, claims: Sequence[Claim]) -> None:
        self._check()
        for c in claims:
            if self.records.get(c.event_key) == c.record:
                del self.records[c.event_key]

    async def lookup(self, event_keys: Sequence[str]) -> list[IdempotencyRecord | None]:
        self._check()
        return [self.records.get(k) for k in event_keys]

    async def is_ready(self) -> tuple[bool, str]:
        return self.available, "in memory"

    def _check(self) -> None:
        if not self.available:
            raise IdempotencyUnavailableError("in-memory idempotency store switched off")
