"""The Redis client every service uses: asyncio, hiredis parser, bounded timeouts."""

from __future__ import annotations

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.typing import EncodableT


def redis_client(
    url: str, *, client_name: str, max_connections: int = 64, native_packing: bool = False
) -> Redis:
    """A client for `url`; `native_packing` packs commands in C (see `NativePacking`)."""
    redis = Redis.from_url(
        url,
        client_name=f"chancery-{client_name}",
        decode_responses=False,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=15,
        max_connections=max_connections,
    )
    return with_native_packing(redis) if native_packing else redis


def with_native_packing(redis: Redis) -> Redis:
    """`redis`, its connections packing commands with hiredis (before any is opened).

    For a client made elsewhere (a test's); `redis_client(native_packing=True)` does this."""
    pool = redis.connection_pool
    base: type[AbstractConnection] = pool.connection_class
    if not issubclass(base, NativePacking):
        pool.connection_class = type(f"NativePacking{base.__name__}", (NativePacking, base), {})
    return redis


class NativePacking(AbstractConnection):
    """Packs commands with hiredis (C) instead of redis-py's per-argument Python loop.

    redis-py appends each argument to a growing buffer in Python, and our script calls carry
    thousands of arguments (ingest claims or completes a 1,000-event batch in one; the
    projector's batch script carries tens of thousands): that loop costs per event. hiredis
    writes the same bytes (RESP arrays of bulk strings, a unit test compares them) in C;
    anything it does not take, and two-word commands, go the usual way.
    """

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        first = args[0]
        if isinstance(first, str) and " " in first:  # "SCRIPT LOAD": redis-py splits it
            return super().pack_command(*args)
        try:
            # hiredis's stub types the command as a 1-tuple; it takes a tuple of any length.
            return [hiredis.pack_command(args)]  # type: ignore[arg-type]
        except TypeError:
            return super().pack_command(*args)
