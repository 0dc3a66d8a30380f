"""The Redis client every service uses: asyncio, hiredis parser, bounded timeouts."""

from __future__ import annotations

from redis.asyncio import Redis


def redis_client(url: str, *, client_name: str, max_connections: int = 64) -> Redis:
    return Redis.from_url(
        url,
        client_name=f"chancery-{client_name}",
        decode_responses=False,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=15,
        max_connections=max_connections,
    )
