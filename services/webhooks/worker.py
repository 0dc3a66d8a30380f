"""The delivery worker: which subscriptions it delivers, and a runner for each.

Every `poll_s` the worker reads the subscriptions from the store. For each active one it
does not deliver yet, it tries to take the lease; with it, it starts a runner. For each it
delivers, it renews the lease, and stops the runner when the subscription was paused or
deleted, or the lease is lost. So any number of workers may run: each subscription is
delivered by one at a time, and when a worker dies (even SIGKILL) another, or the same one
restarted, takes its subscriptions over once their leases expire, from their stored
positions. A runner that crashed is started again at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from typing import Any

from chancery.subscriptions import SubscriptionState

from .runner import LeaseLostError, SubscriptionRunner
from .store import SubscriptionRecord, SubscriptionStore

logger = logging.getLogger(__name__)

RunnerFactory = Callable[[SubscriptionRecord, str], AbstractAsyncContextManager[SubscriptionRunner]]
"""Given a subscription and the lease token: a runner, with its Kafka reader open."""


class _Held:
    def __init__(self, runner: SubscriptionRunner, task: asyncio.Task[None]) -> None:
        self.runner = runner
        self.task = task


class DeliveryWorker:
    def __init__(
        self,
        store: SubscriptionStore,
        runners: RunnerFactory,
        *,
        lease_s: float,
        poll_s: float,
    ) -> None:
        self._store = store
        self._runners = runners
        self._lease_ms = int(lease_s * 1000)
        self._poll_s = poll_s
        self.token = f"worker-{secrets.token_hex(8)}"
        self._held: dict[str, _Held] = {}
        self.polls = 0

    def status(self) -> dict[str, Any]:
        return {
            "worker": self.token,
            "polls": self.polls,
            "subscriptions": [asdict(h.runner.status()) for h in self._held.values()],
        }

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.poll()
                except Exception:
                    logger.exception("webhook worker: a poll failed; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll_s)
        finally:
            await asyncio.gather(
                *(self._let_go(sid, release=True) for sid in list(self._held)),
                return_exceptions=True,
            )

    async def poll(self) -> None:
        records = {r.subscription.id: r for r in await self._store.every()}
        for sid in list(self._held):
            held = self._held[sid]
            record = records.get(sid)
            if (
                held.task.done()
                or record is None
                or record.status.state != SubscriptionState.ACTIVE
            ):
                await self._let_go(sid, release=True)
            elif not await self._store.renew(sid, self.token, self._lease_ms):
                logger.warning("webhook worker: lost the lease of %s; stopping it", sid)
                await self._let_go(sid, release=False)
        for sid, record in records.items():
            if sid in self._held or record.status.state != SubscriptionState.ACTIVE:
                continue
            if await self._store.acquire(sid, self.token, self._lease_ms):
                try:
                    self._held[sid] = await self._start(record)
                except Exception as exc:  # noqa: BLE001 - said, and tried again next poll
                    logger.warning("webhook worker: cannot start %s yet: %s", sid, exc)
        self.polls += 1

    async def _start(self, record: SubscriptionRecord) -> _Held:
        ready: asyncio.Future[SubscriptionRunner] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._serve(record, ready), name=f"subscription-{record.subscription.id}"
        )
        try:
            runner = await asyncio.shield(ready)
        except Exception:
            await asyncio.gather(task, return_exceptions=True)
            await self._store.release(record.subscription.id, self.token)
            raise
        logger.info("webhook worker: delivering %s", record.subscription.id)
        return _Held(runner, task)

    async def _serve(
        self, record: SubscriptionRecord, ready: asyncio.Future[SubscriptionRunner]
    ) -> None:
        try:
            async with self._runners(record, self.token) as runner:
                ready.set_result(runner)
                await runner.run()
        except LeaseLostError:
            logger.warning("webhook worker: %s is held elsewhere now", record.subscription.id)
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
                return
            logger.exception("webhook worker: delivery of %s failed", record.subscription.id)

    async def _let_go(self, sid: str, *, release: bool) -> None:
        held = self._held.pop(sid)
        held.runner.stop()
        await asyncio.gather(held.task, return_exceptions=True)
        if release:
            await self._store.release(sid, self.token)
