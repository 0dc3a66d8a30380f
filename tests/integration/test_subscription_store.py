"""The webhook subscriptions' one Redis adapter (the API's and the delivery worker's), on a
single server and on a Redis Cluster: every key of a subscription shares its hash tag, so the
same calls (a transaction to create, fenced scripts for the lease and the progress, the index
apart) work on both, with the subscriptions spread over the masters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from chancery.keyspace import HookSpace
from chancery.subscriptions import (
    DeliveryAttempt,
    Subscription,
    SubscriptionFilters,
    SubscriptionState,
    SubscriptionStatus,
)
from services.platform.redis import RedisClient, key_slot, redis_client
from services.webhooks.store import Progress, RedisSubscriptionStore

pytestmark = pytest.mark.integration

IDS = [f"sub_{n:020x}" for n in range(1, 9)]


@pytest.fixture(params=["single", "cluster"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[RedisClient]:
    if request.param == "single":
        client: RedisClient = redis_client(
            request.getfixturevalue("redis_db_url"), client_name="test"
        )
        await client.flushdb()
    else:
        client = redis_client(
            request.getfixturevalue("redis_cluster_url"), cluster=True, client_name="test"
        )
    yield client
    await client.aclose()


def _subscription(subscription_id: str) -> Subscription:
    return Subscription(
        id=subscription_id,
        url="https://receiver.example/hook",
        filters=SubscriptionFilters(country=["CHN"]),
        created=datetime(2026, 12, 6, tzinfo=UTC),
        created_by="k1",
        start="chancery.events@",
        secret="whsec_" + "QUJD" * 8,
    )


def _attempt(offset: int) -> DeliveryAttempt:
    return DeliveryAttempt(
        at=datetime(2026, 12, 6, tzinfo=UTC),
        webhook_id=f"evt_{offset}",
        event_id=f"e{offset}",
        event_source="https://wire.example",
        event_type="diplomacy.meeting.held",
        partition=0,
        offset=offset,
        attempt=1,
        status=204,
        latency_ms=3.0,
        error=None,
        outcome="delivered",
    )


async def test_every_operation_acts_on_its_own_subscription(redis: RedisClient) -> None:
    store = RedisSubscriptionStore(redis)
    for subscription_id in IDS:
        await store.create(_subscription(subscription_id), {0: 4, 3: 9})
    if len({key_slot(HookSpace(i).config.encode()) for i in IDS}) < 2:
        pytest.fail("the ids chosen should fall on several slots")

    assert [r.subscription.id for r in await store.every()] == IDS
    one = IDS[2]
    found = await store.get(one)
    assert found is not None
    assert found.position == {0: 4, 3: 9}
    assert found.status.state is SubscriptionState.ACTIVE

    # The lease fences the progress: another token writes nothing.
    assert await store.acquire(one, "worker-a", 10_000)
    assert not await store.acquire(one, "worker-b", 10_000)
    assert await store.renew(one, "worker-a", 10_000)
    progress = Progress(positions={0: 7}, attempts=[_attempt(5), _attempt(7)])
    assert await store.commit(one, "worker-a", progress, kept=1)
    assert not await store.commit(one, "worker-b", Progress(positions={0: 99}), kept=1)
    found = await store.get(one)
    assert found is not None
    assert found.position == {0: 7, 3: 9}
    assert [a.offset for a in await store.deliveries(one, 10)] == [7], "newest first, capped"
    await store.release(one, "worker-a")
    assert await store.acquire(one, "worker-b", 10_000), "released"

    paused = SubscriptionStatus(state=SubscriptionState.PAUSED, changed=datetime.now(UTC))
    changed = await store.set_status(one, paused)
    assert changed is not None
    assert changed.status.state is SubscriptionState.PAUSED

    assert await store.delete(one)
    assert await store.get(one) is None
    assert not await store.delete(one)
    assert [r.subscription.id for r in await store.every()] == [i for i in IDS if i != one]
    untouched = await store.get(IDS[0])
    assert untouched is not None
    assert untouched.position == {0: 4, 3: 9}
