"""An in-memory twin of `services.webhooks.store.RedisSubscriptionStore`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chancery import keyspace
from chancery.subscriptions import DeliveryAttempt, Subscription, SubscriptionStatus
from services.webhooks.store import Progress, SubscriptionRecord


@dataclass
class InMemorySubscriptionStore:
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    states: dict[str, dict[str, str]] = field(default_factory=dict)
    positions: dict[str, dict[int, int]] = field(default_factory=dict)
    attempts: dict[str, list[DeliveryAttempt]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)

    async def create(self, subscription: Subscription, start: Mapping[int, int]) -> None:
        self.subscriptions[subscription.id] = subscription
        self.states[subscription.id] = keyspace.encode_hook_status(
            SubscriptionStatus(changed=subscription.created)
        )
        self.positions[subscription.id] = dict(start)
        self.attempts[subscription.id] = []

    def status(self, subscription_id: str) -> SubscriptionStatus:
        raw = self.states[subscription_id]
        return keyspace.decode_hook_status({k.encode(): v.encode() for k, v in raw.items()})

    async def get(self, subscription_id: str) -> SubscriptionRecord | None:
        if subscription_id not in self.subscriptions:
            return None
        return SubscriptionRecord(
            self.subscriptions[subscription_id],
            self.status(subscription_id),
            dict(self.positions[subscription_id]),
        )

    async def every(self) -> list[SubscriptionRecord]:
        found = [await self.get(sid) for sid in sorted(self.subscriptions)]
        return [r for r in found if r is not None]

    async def delete(self, subscription_id: str) -> bool:
        found = self.subscriptions.pop(subscription_id, None) is not None
        self.states.pop(subscription_id, None)
        self.positions.pop(subscription_id, None)
        self.attempts.pop(subscription_id, None)
        self.leases.pop(subscription_id, None)
        return found

    async def set_status(
        self, subscription_id: str, status: SubscriptionStatus
    ) -> SubscriptionRecord | None:
        if subscription_id not in self.subscriptions:
            return None
        self.states[subscription_id] = keyspace.encode_hook_status(status)
        return await self.get(subscription_id)

    async def deliveries(self, subscription_id: str, limit: int) -> list[DeliveryAttempt]:
        return self.attempts.get(subscription_id, [])[:limit]

    async def acquire(self, subscription_id: str, token: str, lease_ms: int) -> bool:
        if subscription_id in self.leases:
            return False
        self.leases[subscription_id] = token
        return True

    async def renew(self, subscription_id: str, token: str, lease_ms: int) -> bool:
        return self.leases.get(subscription_id) == token

    async def release(self, subscription_id: str, token: str) -> None:
        if self.leases.get(subscription_id) == token:
            del self.leases[subscription_id]

    async def commit(
        self, subscription_id: str, token: str, progress: Progress, *, kept: int
    ) -> bool:
        if self.leases.get(subscription_id) != token:
            return False
        self.positions.setdefault(subscription_id, {}).update(progress.positions)
        newest_first = list(reversed(progress.attempts))
        kept_attempts = newest_first + self.attempts.get(subscription_id, [])
        self.attempts[subscription_id] = kept_attempts[:kept]
        self.states.setdefault(subscription_id, {}).update(progress.status_fields)
        return True
