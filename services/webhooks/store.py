"""Webhook subscriptions in Redis: the one adapter both the API and the worker use.

Every key comes from `chancery.keyspace` (`HookSpace`, `HOOKS_INDEX`). Each command touches
one key, or keys of one subscription (one hash tag), so the adapter runs unchanged on Redis
Cluster; the index is written apart from a subscription's own keys (a subscription is
written before it is indexed, and unindexed before it is deleted, so the worker never
finds an index entry without its subscription for long, and skips one if it does).

The worker holds a subscription through a lease (`acquire`, `renew`, `release`): a token
with an expiry. Everything it writes goes through `commit`, one script that first checks the
lease is still its own, so a worker that lost its lease (paused for longer than the lease by
a stop-the-world pause, say) cannot move a position another worker now owns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.typing import EncodableT, FieldT

from chancery import keyspace
from chancery.keyspace import HOOKS_INDEX, HookSpace
from chancery.subscriptions import (
    DeliveryAttempt,
    Subscription,
    SubscriptionStatus,
)
from services.platform.redis import RedisClient

# KEYS: lease, position, deliveries, state. ARGV: token, kept, then three counted lists:
# partition/offset pairs, attempts, state field/value pairs.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local kept = tonumber(ARGV[2])
local i = 3
local n = tonumber(ARGV[i]); i = i + 1
for j = 0, n - 1 do
  redis.call('HSET', KEYS[2], ARGV[i + 2 * j], ARGV[i + 2 * j + 1])
end
i = i + 2 * n
n = tonumber(ARGV[i]); i = i + 1
for j = 0, n - 1 do
  redis.call('LPUSH', KEYS[3], ARGV[i + j])
end
if n > 0 then redis.call('LTRIM', KEYS[3], 0, kept - 1) end
i = i + n
n = tonumber(ARGV[i]); i = i + 1
for j = 0, n - 1 do
  redis.call('HSET', KEYS[4], ARGV[i + 2 * j], ARGV[i + 2 * j + 1])
end
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


@dataclass(frozen=True)
class SubscriptionRecord:
    """A subscription, its state, and where its delivery stands (partition -> last offset
    delivered or passed over)."""

    subscription: Subscription
    status: SubscriptionStatus
    position: Mapping[int, int]


@dataclass
class Progress:
    """What a worker writes of one subscription at once (see `commit`)."""

    positions: Mapping[int, int] = field(default_factory=dict)
    attempts: Sequence[DeliveryAttempt] = ()
    status_fields: Mapping[str, str] = field(default_factory=dict)
    """Fields of the state hash (`keyspace.HookStateField`): only those the worker owns
    (the last error, failing since), and the state itself only when it pauses."""

    def __bool__(self) -> bool:
        return bool(self.positions or self.attempts or self.status_fields)


class SubscriptionStore(Protocol):
    async def create(self, subscription: Subscription, start: Mapping[int, int]) -> None: ...

    async def get(self, subscription_id: str) -> SubscriptionRecord | None: ...

    async def every(self) -> list[SubscriptionRecord]: ...

    async def delete(self, subscription_id: str) -> bool: ...

    async def set_status(
        self, subscription_id: str, status: SubscriptionStatus
    ) -> SubscriptionRecord | None: ...

    async def deliveries(self, subscription_id: str, limit: int) -> list[DeliveryAttempt]: ...

    async def acquire(self, subscription_id: str, token: str, lease_ms: int) -> bool: ...

    async def renew(self, subscription_id: str, token: str, lease_ms: int) -> bool: ...

    async def release(self, subscription_id: str, token: str) -> None: ...

    async def commit(
        self, subscription_id: str, token: str, progress: Progress, *, kept: int
    ) -> bool: ...


class RedisSubscriptionStore:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._commit = redis.register_script(_COMMIT)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    # --- the API's side --------------------------------------------------------------------

    async def create(self, subscription: Subscription, start: Mapping[int, int]) -> None:
        space = HookSpace(subscription.id)
        status = SubscriptionStatus(changed=subscription.created)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(space.config, keyspace.encode_subscription(subscription))
            pipe.hset(space.state, mapping=_fields(keyspace.encode_hook_status(status)))
            if start:
                pipe.hset(
                    space.position, mapping=_fields({str(p): str(o) for p, o in start.items()})
                )
            await pipe.execute()
        await self._redis.sadd(HOOKS_INDEX, subscription.id)

    async def get(self, subscription_id: str) -> SubscriptionRecord | None:
        found = await self._records([subscription_id])
        return found[0] if found else None

    async def every(self) -> list[SubscriptionRecord]:
        members = await self._redis.smembers(HOOKS_INDEX)
        ids = sorted(_text(m) for m in members)
        return await self._records(ids)

    async def _records(self, ids: Sequence[str]) -> list[SubscriptionRecord]:
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for subscription_id in ids:
                space = HookSpace(subscription_id)
                pipe.get(space.config)
                pipe.hgetall(space.state)
                pipe.hgetall(space.position)
            replies: list[Any] = await pipe.execute()
        records = []
        for n in range(len(ids)):
            config, state, position = replies[3 * n : 3 * n + 3]
            if config is None:
                continue  # deleted meanwhile, or indexed before it was written
            records.append(
                SubscriptionRecord(
                    keyspace.decode_subscription(config),
                    keyspace.decode_hook_status(state),
                    keyspace.decode_hook_position(position),
                )
            )
        return records

    async def delete(self, subscription_id: str) -> bool:
        space = HookSpace(subscription_id)
        await self._redis.srem(HOOKS_INDEX, subscription_id)
        return bool(await self._redis.delete(*space.keys))

    async def set_status(
        self, subscription_id: str, status: SubscriptionStatus
    ) -> SubscriptionRecord | None:
        space = HookSpace(subscription_id)
        if not await self._redis.exists(space.config):
            return None
        await self._redis.hset(space.state, mapping=_fields(keyspace.encode_hook_status(status)))
        return await self.get(subscription_id)

    async def deliveries(self, subscription_id: str, limit: int) -> list[DeliveryAttempt]:
        key = HookSpace(subscription_id).deliveries
        raw = await self._redis.lrange(key, 0, limit - 1)
        return [keyspace.decode_attempt(_bytes(item)) for item in raw]

    # --- the worker's side -----------------------------------------------------------------

    async def acquire(self, subscription_id: str, token: str, lease_ms: int) -> bool:
        lease = HookSpace(subscription_id).lease
        return bool(await self._redis.set(lease, token, nx=True, px=lease_ms))

    async def renew(self, subscription_id: str, token: str, lease_ms: int) -> bool:
        lease = HookSpace(subscription_id).lease
        return bool(await self._renew(keys=[lease], args=[token, lease_ms]))

    async def release(self, subscription_id: str, token: str) -> None:
        await self._release(keys=[HookSpace(subscription_id).lease], args=[token])

    async def commit(
        self, subscription_id: str, token: str, progress: Progress, *, kept: int
    ) -> bool:
        """Write `progress` if `token` still holds the lease; False (nothing written) if not."""
        space = HookSpace(subscription_id)
        args: list[str | int | bytes] = [token, kept, len(progress.positions)]
        for partition, offset in progress.positions.items():
            args += [partition, offset]
        args.append(len(progress.attempts))
        # LPUSH one by one: the newest ends up first.
        args += [keyspace.encode_attempt(a) for a in progress.attempts]
        args.append(len(progress.status_fields))
        for name, value in progress.status_fields.items():
            args += [name, value]
        keys = [space.lease, space.position, space.deliveries, space.state]
        return bool(await self._commit(keys=keys, args=args))


def _fields(values: Mapping[str, str]) -> dict[FieldT, EncodableT]:
    fields: dict[FieldT, EncodableT] = {}
    fields.update(values)
    return fields


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
