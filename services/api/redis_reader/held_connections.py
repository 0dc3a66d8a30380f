"""Round trips to Redis on connections taken once from redis-py's pool and then held.

A read of the API is one round trip of a few small commands. Through redis-py's Pipeline
and pool, each round trip also pays for what such a read does not need: a checkout and a
release (a lock, a health check, a check for unread data, observability events), a task for
the write timeout and a timeout scope per reply, and a response callback per command; on the
hot path that is a large share of the API's CPU (docs/performance.md). `HeldConnections`
keeps only what a read needs:

- connections are taken from the pool once and then kept on a free list of its own (LIFO,
  bounded; a caller waits when all are busy);
- the client behind it has no per-socket-operation timeout; one timeout covers the whole
  round trip instead (a reply late past it disconnects the connection, as redis-py does, so
  the next use reconnects and stays in step);
- the packed bytes of a batch can be kept under a key the caller chooses (a relation read
  packs to the same bytes while its pair, day and cache state are the same);
- replies are the RESP replies as parsed, without redis-py's response callbacks (an HGETALL
  is a flat list of fields and values);
- a reply that is an error is read past (so the connection stays in step) and raised once
  every reply is in, or left in its place for the caller.

It relies on these parts of redis-py's asyncio connection API: `ConnectionPool.
get_connection()` with no argument, `AbstractConnection.pack_commands`,
`send_packed_command(..., check_health=False)`, `read_response()` and `disconnect()`
(tests/unit/api/test_held_connections.py and tests/integration/test_api_round_trips.py hold it
to them).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from cachetools import LRUCache
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[str | int | bytes, ...]
Commands = tuple[Command, ...]

CONNECTIONS = 32
ROUND_TRIP_TIMEOUT_S = 10.0
PACKED_KEPT = 4096


def connection_source(pool: ConnectionPool) -> Callable[[], Awaitable[AbstractConnection]]:
    """The pool's `get_connection`, typed (redis-py leaves it unannotated)."""
    get_connection: Callable[[], Awaitable[AbstractConnection]] = pool.get_connection
    return get_connection


class HeldConnections:
    def __init__(
        self,
        redis: Redis,
        *,
        connections: int = CONNECTIONS,
        timeout_s: float = ROUND_TRIP_TIMEOUT_S,
    ) -> None:
        """`redis`: best a client of its own, made with `socket_timeout=None` and no health
        check interval (the timeout here covers the round trip)."""
        self._connect = connection_source(redis.connection_pool)
        self._size = min(connections, redis.connection_pool.max_connections)
        self._timeout_s = timeout_s
        self._idle: list[AbstractConnection] = []
        self._taken = 0  # connections held, idle or in use
        self._waiting: deque[asyncio.Future[AbstractConnection]] = deque()
        self._packed: LRUCache[Hashable, tuple[list[bytes], int]] = LRUCache(PACKED_KEPT)

    async def send(self, commands: Commands, *, raise_on_error: bool = True) -> list[Any]:
        """The replies to `commands`, in order, from one round trip.

        With `raise_on_error` False, a reply that is an error is returned in its place.
        """
        return await self._round_trip(None, lambda: commands, raise_on_error)

    async def send_packed_once(self, key: Hashable, build: Callable[[], Commands]) -> list[Any]:
        """`send(build())`, packed once per `key` (the same key must build the same commands)."""
        return await self._round_trip(key, build, True)

    async def _round_trip(
        self, key: Hashable | None, build: Callable[[], Commands], raise_on_error: bool
    ) -> list[Any]:
        """One timeout covers taking a connection (and connecting it), sending and every
        reply; a connection that failed or timed out is disconnected and the round trip
        tried once more."""
        for attempt in range(2):
            conn: AbstractConnection | None = None
            try:
                async with asyncio.timeout(self._timeout_s):
                    conn = await self._take()
                    packed, count = self._pack(conn, key, build)
                    await conn.send_packed_command(packed, check_health=False)
                    replies: list[Any] = []
                    error: ResponseError | None = None
                    for _ in range(count):
                        try:
                            replies.append(await conn.read_response())
                        except ResponseError as exc:
                            error = error or exc
                            replies.append(exc)
                if error is not None and raise_on_error:
                    raise error
                return replies
            except (RedisConnectionError, RedisTimeoutError, TimeoutError) as exc:
                if conn is not None:
                    await conn.disconnect()  # the next use reconnects
                if attempt:
                    if isinstance(exc, TimeoutError):
                        raise RedisTimeoutError(
                            f"no reply from Redis within {self._timeout_s} s"
                        ) from None
                    raise
            finally:
                if conn is not None:
                    self._give(conn)
        raise AssertionError("unreachable")

    def _pack(
        self, conn: AbstractConnection, key: Hashable | None, build: Callable[[], Commands]
    ) -> tuple[list[bytes], int]:
        if key is None:
            commands = build()
            return conn.pack_commands(commands), len(commands)
        kept = self._packed.get(key)
        if kept is None:
            commands = build()
            kept = self._packed[key] = (conn.pack_commands(commands), len(commands))
        return kept

    async def _take(self) -> AbstractConnection:
        if self._idle:
            return self._idle.pop()
        if self._taken < self._size:
            self._taken += 1
            try:
                return await self._connect()
            except BaseException:
                self._taken -= 1
                raise
        waiter: asyncio.Future[AbstractConnection] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give(waiter.result())  # handed over just as we were cancelled
            raise

    def _give(self, conn: AbstractConnection) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)
