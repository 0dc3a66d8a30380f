"""The hot path's round trips to Redis: commands packed once, on connections held at hand.

Every relation read (and snapshot) is one round trip of a few small commands. Through
redis-py's pool each one also paid a checkout and a release (a lock, a health check, a
check for unread data, observability events), a task for the write timeout and a timeout
scope per reply: about as much CPU as the rest of the read. Here:

- connections are taken from the pool once and then kept on a free list of the lane's own
  (LIFO, bounded; a caller waits when all are busy);
- the client behind the lane has no per-socket-operation timeout; one timeout covers the
  whole round trip instead (a reply late past it disconnects the connection, as redis-py
  does, so the next use reconnects and stays in step);
- the packed bytes of a command batch are kept under a key the caller chooses (a relation
  read packs to the same bytes while its pair, day and cache state are the same);
- a reply that is an error is read past (so the connection stays in step) and raised once
  every reply is in.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Commands = tuple[tuple[str | int | bytes, ...], ...]

LANE_CONNECTIONS = 32
ROUND_TRIP_TIMEOUT_S = 10.0
PACKED_KEPT = 4096


class Lane:
    def __init__(
        self,
        redis: Redis,
        *,
        connections: int = LANE_CONNECTIONS,
        timeout_s: float = ROUND_TRIP_TIMEOUT_S,
    ) -> None:
        """`redis`: best a client of its own, made with `socket_timeout=None` and no health
        check interval (the lane's timeout covers the round trip)."""
        self._pool = redis.connection_pool
        self._size = min(connections, redis.connection_pool.max_connections)
        self._timeout_s = timeout_s
        self._idle: list[AbstractConnection] = []
        self._taken = 0  # connections the lane holds, idle or in use
        self._waiting: deque[asyncio.Future[AbstractConnection]] = deque()
        self._packed: dict[Hashable, tuple[list[bytes], int]] = {}

    async def _take(self) -> AbstractConnection:
        if self._idle:
            return self._idle.pop()
        if self._taken < self._size:
            self._taken += 1
            try:
                conn: AbstractConnection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            except BaseException:
                self._taken -= 1
                raise
            return conn
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

    async def send(self, key: Hashable, build: Callable[[], Commands]) -> list[Any]:
        """The replies to the commands `build()` makes (packed once per `key`), in order.

        One timeout covers taking a connection (and connecting it), sending and every reply.
        """
        for attempt in range(2):
            conn: AbstractConnection | None = None
            try:
                async with asyncio.timeout(self._timeout_s):
                    conn = await self._take()
                    kept = self._packed.get(key)
                    if kept is None:
                        commands = build()
                        if len(self._packed) >= PACKED_KEPT:
                            self._packed.clear()
                        kept = self._packed[key] = (conn.pack_commands(commands), len(commands))
                    packed, count = kept
                    await conn.send_packed_command(packed, check_health=False)
                    replies: list[Any] = []
                    error: ResponseError | None = None
                    for _ in range(count):
                        try:
                            replies.append(await conn.read_response())
                        except ResponseError as exc:
                            error = error or exc
                            replies.append(exc)
                if error is not None:
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
