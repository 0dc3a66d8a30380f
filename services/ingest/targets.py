"""Where a retraction's target was written, once ingest's own memory of it has expired.

A retraction goes to the partition of the event it retracts, so ingest needs the target's
partition key. Ingest remembers that key in the target's idempotency record, but only for
`idempotency_ttl_s` (7 days). For an older target the read models know it: the projector
stores every event it applies in its partition's `events` hash (`partitionkey` included),
found by its id in the partition's `ids` index, in the version the API serves (of this
release's read-model layout: chancery/keyspace.py). Ingest only reads them; the projector
alone writes them.

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
from chancery.contract import Event, decode_event, event_key
from chancery.keyspace import PartitionSpace
from services.platform.redis import REDIS_FAILED, RedisClient

logger = logging.getLogger(__name__)


class ReadModelsUnavailableError(Exception):
    """The read models could not be asked; whether the targets exist is not known."""


class TargetIndex(Protocol):
    async def lookup(self, targets: Sequence[tuple[str, str]]) -> list[Event | None]:
        """Per (source, id): the event as the log holds it (with its `partitionkey`), or None
        when the read models have no such event."""
        ...


class RedisTargetIndex:
    def __init__(self, redis: RedisClient, *, op_timeout_s: float = 2.0) -> None:
        self._redis = redis
        self._op_timeout_s = op_timeout_s

    async def lookup(self, targets: Sequence[tuple[str, str]]) -> list[Event | None]:
        if not targets:
            return []
        try:
            async with asyncio.timeout(self._op_timeout_s):
                stored = await self._stored(list(dict.fromkeys(i for _, i in targets)))
        except TimeoutError as exc:
            raise ReadModelsUnavailableError(
                f"Redis did not answer within {self._op_timeout_s:g}s"
            ) from exc
        except REDIS_FAILED as exc:
            raise ReadModelsUnavailableError(f"Redis: {exc}") from exc
        return [stored.get(event_key(source, id_)) for source, id_ in targets]

    async def _stored(self, ids: list[str]) -> dict[str, Event]:
        """The events stored under these ids in the served version, by event_key."""
        active = await self._redis.get(keyspace.ACTIVE_VERSION)
        if active is None:
            return {}  # no read models yet
        version = int(active)
        meta = await self._redis.hgetall(keyspace.version_meta(version))
        partitions = meta.get(keyspace.MetaField.PARTITIONS.encode())
        if partitions is None:
            return {}
        if keyspace.layout_of(meta) != keyspace.LAYOUT:
            raise ReadModelsUnavailableError(
                f"the served read models (version {version}) are of another layout: "
                "run `chancery rebuild`"
            )
        spaces = [PartitionSpace(version, p) for p in range(int(partitions))]
        fields = [keyspace.event_id_field(i) for i in ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            for space in spaces:
                pipe.hmget(space.event_ids, fields)
            rows: list[list[bytes | None]] = await pipe.execute()
        wanted = [
            (space, [keyspace.place_field(p) for v in row if v for p in keyspace.decode_places(v)])
            for space, row in zip(spaces, rows, strict=True)
        ]
        wanted = [(space, places) for space, places in wanted if places]
        if not wanted:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for space, places in wanted:
                pipe.hmget(space.events, places)
            values: list[list[bytes | None]] = await pipe.execute()
        found: dict[str, Event] = {}
        for (_, places), row in zip(wanted, values, strict=True):
            for place, value in zip(places, row, strict=True):
                if value is not None:
                    event = _decoded(int(place), value)
                    if event is not None:
                        found.setdefault(event.key, event)
        return found


def _decoded(place: int, stored: bytes) -> Event | None:
    _, raw = keyspace.decode_stored_event(stored, place)
    try:
        return decode_event(raw)
    except ValidationError as exc:  # the projector decoded it once; this should not happen
        logger.warning("stored event at %d does not decode: %s", place, exc)
        return None
