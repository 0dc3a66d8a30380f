"""Where a retraction's target was written, once ingest's own memory of it has expired.

A retraction goes to the partition of the event it retracts, so ingest needs the target's
partition key. Ingest remembers that key in the target's idempotency record, but only for
`idempotency_ttl_s` (7 days). For an older target the read models know it: the projector
stores every event it applies in its partition's `events` hash (event_key -> offset and the
event as the log holds it, `partitionkey` included), in the version the API serves. Ingest
only reads them; the projector alone writes them.

The port and its Redis adapter (one pipeline across the partitions); the in-memory twin is
in tests/twins/ingest.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from pydantic import ValidationError

from chancery import keyspace
from chancery.contract import Event, decode_event
from chancery.keyspace import PartitionSpace
from services.platform.redis import REDIS_FAILED, RedisClient

logger = logging.getLogger(__name__)


class ReadModelsUnavailableError(Exception):
    """The read models could not be asked; whether the targets exist is not known."""


class TargetIndex(Protocol):
    async def lookup(self, event_keys: Sequence[str]) -> list[Event | None]:
        """Per key: the event as the log holds it (with its `partitionkey`), or None when the
        read models have no such event."""
        ...


class RedisTargetIndex:
    def __init__(self, redis: RedisClient, *, op_timeout_s: float = 2.0) -> None:
        self._redis = redis
        self._op_timeout_s = op_timeout_s

    async def lookup(self, event_keys: Sequence[str]) -> list[Event | None]:
        if not event_keys:
            return []
        keys = list(event_keys)
        try:
            async with asyncio.timeout(self._op_timeout_s):
                rows = await self._stored(keys)
        except TimeoutError as exc:
            raise ReadModelsUnavailableError(
                f"Redis did not answer within {self._op_timeout_s:g}s"
            ) from exc
        except REDIS_FAILED as exc:
            raise ReadModelsUnavailableError(f"Redis: {exc}") from exc
        found: list[Event | None] = [None] * len(keys)
        for row in rows:
            for i, value in enumerate(row):
                if value is not None and found[i] is None:
                    found[i] = _decoded(keys[i], value)
        return found

    async def _stored(self, keys: list[str]) -> list[list[bytes | None]]:
        """Per partition of the served version, the stored value of each key (or None)."""
        active = await self._redis.get(keyspace.ACTIVE_VERSION)
        if active is None:
            return []  # no read models yet
        version = int(active)
        partitions = await self._redis.hget(
            keyspace.version_meta(version), keyspace.MetaField.PARTITIONS
        )
        if partitions is None:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(int(partitions)):
                pipe.hmget(PartitionSpace(version, partition).events, keys)
            rows: list[list[bytes | None]] = await pipe.execute()
        return rows


def _decoded(event_key: str, stored: bytes) -> Event | None:
    _, raw = keyspace.decode_stored_event(stored)
    try:
        return decode_event(raw)
    except ValidationError as exc:  # the projector decoded it once; this should not happen
        logger.warning("stored event %s does not decode: %s", event_key, exc)
        return None
