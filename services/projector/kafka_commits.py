"""Kafka's committed offsets, for lag tools only: Redis holds the positions the projector uses.

Committed after the Redis writes they follow, every `COMMIT_EVERY_S`, in the background and
one at a time: the broker's answer is not worth holding up the loop (and the scripts behind
it) for, since nothing ever reads these offsets back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from .consumer import EventLogConsumer

logger = logging.getLogger(__name__)

COMMIT_EVERY_S = 2.0


class KafkaOffsetCommits:
    """One commit at a time, of the offsets `offsets` gives when it starts."""

    def __init__(
        self, consumer: EventLogConsumer, offsets: Callable[[], dict[TopicPartition, int]]
    ) -> None:
        self._consumer = consumer
        self._offsets = offsets
        self._last = 0.0
        self._commit: asyncio.Task[None] | None = None

    def start_if_due(self) -> None:
        """Start a commit in the background if one is due and the last one has ended (an
        error the commit does not expect is raised here, in the round after it)."""
        now = time.monotonic()
        if now - self._last < COMMIT_EVERY_S:
            return
        commit = self._commit
        if commit is not None:
            if not commit.done():
                return  # the last one is still on its way: this one waits for the next round
            commit.result()
        self._last = now
        self._commit = asyncio.create_task(self._commit_offsets(), name="projector-commit")

    async def abandon(self) -> None:
        """On the way out, or before a retry: cancel the commit in flight rather than await
        it (aiokafka retries one for as long as the broker is away, which would hold up a
        stop or a retry); an error it ended with is logged, as no round is left to raise it."""
        commit, self._commit = self._commit, None
        if commit is None:
            return
        commit.cancel()
        await asyncio.gather(commit, return_exceptions=True)
        if not commit.cancelled() and commit.exception() is not None:
            logger.warning("Kafka offset commit failed: %r", commit.exception())

    async def _commit_offsets(self) -> None:
        offsets = self._offsets()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # informational only: Redis holds the real positions
            logger.debug("Kafka offset commit skipped: %r", exc)
