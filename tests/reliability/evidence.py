"""What a test looks at to say "nothing was written": the topics' end offsets and the whole
Redis database, key by key, in a form that compares equal when nothing changed.

Hash fields that record wall-clock time (`updated_ms`, ...) are left out, as in the
canonical dumps of tests/integration/projector_helpers.py; every other value is compared
whole (DUMP bytes for the types without such fields).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tests.integration.projector_helpers import VOLATILE_FIELDS, end_offsets


async def redis_state(url: str) -> dict[bytes, object]:
    """Every key of the database: hashes as their fields (without wall-clock ones), other
    types as their DUMP."""
    redis = Redis.from_url(url)
    try:
        keys = sorted([k async for k in redis.scan_iter(count=1000)])
        out: dict[bytes, object] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            async with redis.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.type(key)
                kinds = await pipe.execute()
            async with redis.pipeline(transaction=False) as pipe:
                for key, kind in zip(chunk, kinds, strict=True):
                    if kind == b"hash":
                        pipe.hgetall(key)
                    else:
                        pipe.dump(key)
                values = await pipe.execute()
            for key, kind, value in zip(chunk, kinds, values, strict=True):
                out[key] = (kind, _without_wall_clock(value) if kind == b"hash" else value)
        return out
    finally:
        await redis.aclose()


def _without_wall_clock(fields: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return sorted((k, v) for k, v in fields.items() if k.decode() not in VOLATILE_FIELDS)


def redis_diff(before: Mapping[bytes, object], after: Mapping[bytes, object]) -> list[str]:
    """The keys added, removed or changed (empty: nothing was written)."""
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    return (
        [f"added {k!r}" for k in added[:10]]
        + [f"removed {k!r}" for k in removed[:10]]
        + [f"changed {k!r}" for k in changed[:10]]
    )


@dataclass(frozen=True)
class Written:
    """The end offsets of a topic and its dead-letter topic, and the Redis database."""

    offsets: dict[str, dict[int, int]]
    redis: dict[bytes, object]


async def written(bootstrap: str, topics: list[str], redis_url: str) -> Written:
    return Written(
        {t: await end_offsets(bootstrap, t) for t in topics}, await redis_state(redis_url)
    )


def nothing_written(before: Written, after: Written) -> list[str]:
    """What differs between two observations (empty: nothing was written in between)."""
    problems: list[str] = []
    for topic, offsets in before.offsets.items():
        if after.offsets[topic] != offsets:
            problems.append(f"{topic}: end offsets {offsets} -> {after.offsets[topic]}")
    return problems + redis_diff(before.redis, after.redis)


def problem_shape(body: Any, status: int) -> list[str]:
    """What is wrong with an RFC 9457 problem body (empty: it is one, for `status`)."""
    if not isinstance(body, dict):
        return [f"the body is not a JSON object: {str(body)[:200]}"]
    wrong = [f"no {f!r}" for f in ("type", "title", "status", "detail") if f not in body]
    if body.get("status") != status:
        wrong.append(f"status {body.get('status')!r} in the body, {status} on the wire")
    return wrong


SERVICE_LOGGERS = ("services", "chancery", "uvicorn.error")


def server_errors_logged(
    records: Iterable[logging.LogRecord], *, besides: tuple[type[BaseException], ...] = ()
) -> list[str]:
    """The ERROR records of the services and their HTTP server (unhandled exceptions end up
    there), leaving out those caused by an exception of a type in `besides`."""
    out = []
    for record in records:
        if record.levelno < logging.ERROR or not record.name.startswith(SERVICE_LOGGERS):
            continue
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(exc, besides):
            continue
        out.append(f"{record.name}: {record.getMessage()[:200]} ({type(exc).__name__})")
    return out
