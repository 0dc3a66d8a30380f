"""The Redis client every service uses: one server or a Redis Cluster, as the settings say.

`redis_client(url, cluster=...)` gives redis-py's asyncio `Redis` for one server, or its
`RedisCluster` for a node of a cluster (it discovers the other nodes from that one, routes
each command by the slot of its keys, and finds the new master after a failover), both with
the hiredis parser, bounded timeouts and `ClosedWhileSending` connections. `check_redis_mode`
tells, at start, whether the server is what the settings say it is. `REDIS_UNAVAILABLE` is
what every service treats as "Redis cannot answer now": a 503 in the HTTP services, a retry
from the stored offsets in the projector.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypeAlias, TypeVar, overload
from urllib.parse import urlsplit

import hiredis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.crc import key_slot
from redis.exceptions import (
    ClusterError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

__all__ = [
    "REDIS_FAILED",
    "REDIS_UNAVAILABLE",
    "ClosedWhileSending",
    "NativePacking",
    "RedisClient",
    "RedisModeError",
    "check_redis_mode",
    "is_cluster",
    "key_slot",
    "node_url",
    "redis_client",
    "with_native_packing",
]

RedisClient: TypeAlias = Redis | RedisCluster
"""What `redis_client` gives: code that works on both takes this."""

REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,  # refused, reset, or no node of a cluster reachable
    RedisTimeoutError,
    ClusterError,  # CLUSTERDOWN (a slot without a master), MASTERDOWN, redirections exhausted
    TryAgainError,  # a slot being moved between masters
    SlotNotCoveredError,  # the client knows no master for a slot (mid-failover)
    OSError,
)
"""Redis cannot answer now; the same request may succeed later (after a failover, say)."""


REDIS_FAILED: tuple[type[Exception], ...] = (RedisError, *REDIS_UNAVAILABLE)
"""Redis did not do what was asked (its outcome unknown), for any reason of Redis's."""


class RedisModeError(RedisError):
    """The server is not what the settings say: a cluster node where a single server was
    configured, or the reverse."""


def is_cluster(redis: RedisClient) -> bool:
    return isinstance(redis, RedisCluster)


@overload
def redis_client(
    url: str,
    *,
    cluster: Literal[False] = False,
    client_name: str,
    max_connections: int = 64,
    native_packing: bool = False,
    socket_timeout: float | None = 10,
    health_check_interval: int = 15,
    connect_timeout_s: float = 5,
) -> Redis: ...


@overload
def redis_client(
    url: str,
    *,
    cluster: Literal[True],
    client_name: str,
    max_connections: int = 64,
    native_packing: bool = False,
    socket_timeout: float | None = 10,
    health_check_interval: int = 15,
    connect_timeout_s: float = 5,
) -> RedisCluster: ...


@overload
def redis_client(
    url: str,
    *,
    cluster: bool,
    client_name: str,
    max_connections: int = 64,
    native_packing: bool = False,
    socket_timeout: float | None = 10,
    health_check_interval: int = 15,
    connect_timeout_s: float = 5,
) -> RedisClient: ...


def redis_client(
    url: str,
    *,
    cluster: bool = False,
    client_name: str,
    max_connections: int = 64,
    native_packing: bool = False,
    socket_timeout: float | None = 10,
    health_check_interval: int = 15,
    connect_timeout_s: float = 5,
) -> RedisClient:
    """A client for `url`: one server, or (`cluster`) the Redis Cluster that `url`'s node
    belongs to. `max_connections` is per node on a cluster. `native_packing` packs commands
    in C (see `NativePacking`). Nothing connects before the first command."""
    options: dict[str, Any] = {
        "client_name": f"chancery-{client_name}",
        "decode_responses": False,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout_s,
        "health_check_interval": health_check_interval,
        "max_connections": max_connections,
    }
    if cluster:
        database = urlsplit(url).path.strip("/")
        if database not in ("", "0"):
            msg = (
                f"CHANCERY_REDIS_URL names database {database}, but a Redis Cluster has "
                "database 0 only"
            )
            raise RedisModeError(msg)
        nodes: RedisCluster = _RedisCluster.from_url(url, **options)
        nodes = _with_connection_mixin(nodes, ClosedWhileSending)
        return with_native_packing(nodes) if native_packing else nodes
    server: Redis = _with_connection_mixin(Redis.from_url(url, **options), ClosedWhileSending)
    return with_native_packing(server) if native_packing else server


def node_url(url: str, host: str, port: int) -> str:
    """`url` (credentials, TLS and options kept) pointing at one node of its cluster."""
    parts = urlsplit(url)
    credentials, at, _ = parts.netloc.rpartition("@")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return parts._replace(netloc=f"{credentials}{at}{address}", path="/0").geturl()


class _RedisCluster(RedisCluster):
    """redis-py's cluster client, for which losing every node is a connection error.

    redis-py reports "no startup node reachable" (and "slots not covered" while a failover
    is under way) as `RedisClusterException`, the class it also uses for misuse such as a
    command across slots; here they are what they mean to a service, Redis unavailable."""

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except SlotNotCoveredError:
            raise
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc


async def check_redis_mode(url: str, *, cluster: bool, timeout_s: float = 5.0) -> None:
    """Raise `RedisModeError` when the server at `url` is a cluster node and `cluster` is
    False, or the reverse; Redis's own errors (unreachable, say) propagate."""
    probe = Redis.from_url(
        url if not cluster else _database_zero(url),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    try:
        info: dict[str, Any] = await probe.info("cluster")
    finally:
        await probe.aclose()
    enabled = str(info.get("cluster_enabled", "0")) == "1"
    where = _without_password(url)
    if enabled and not cluster:
        msg = (
            f"the Redis at {where} is a node of a Redis Cluster (cluster_enabled:1), but "
            "CHANCERY_REDIS_CLUSTER is false: set CHANCERY_REDIS_CLUSTER=true to use the cluster"
        )
        raise RedisModeError(msg)
    if cluster and not enabled:
        msg = (
            f"CHANCERY_REDIS_CLUSTER=true, but the Redis at {where} is a single server, not a "
            "node of a Redis Cluster (cluster_enabled:0): unset CHANCERY_REDIS_CLUSTER, or point "
            "CHANCERY_REDIS_URL at a node of the cluster"
        )
        raise RedisModeError(msg)


def _database_zero(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path="/0").geturl()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


AnyRedis = TypeVar("AnyRedis", Redis, RedisCluster)


def with_native_packing(redis: AnyRedis) -> AnyRedis:
    """`redis`, its connections packing commands with hiredis (before any is opened).

    For a client made elsewhere (a test's); `redis_client(native_packing=True)` does this."""
    return _with_connection_mixin(redis, NativePacking)


def _with_connection_mixin(redis: AnyRedis, mixin: type[Any]) -> AnyRedis:
    """`redis`, every connection it opens (none yet) of a class with `mixin` mixed in."""
    if isinstance(redis, RedisCluster):
        # Every node the cluster client makes takes its connection class from these
        # options; the nodes made already (the startup node) are given it too.
        options = redis.nodes_manager.connection_kwargs
        options["connection_class"] = _mixed(options.get("connection_class", Connection), mixin)
        nodes = (*redis.nodes_manager.startup_nodes.values(), *redis.get_nodes())
        for node in nodes:
            node.connection_class = _mixed(node.connection_class, mixin)
        return redis
    pool = redis.connection_pool
    pool.connection_class = _mixed(pool.connection_class, mixin)
    return redis


def _mixed(base: type[AbstractConnection], mixin: type[Any]) -> type[Any]:
    if issubclass(base, mixin):
        return base
    return type(f"{mixin.__name__}{base.__name__}", (mixin, base), {})


class ClosedWhileSending(AbstractConnection):
    """A connection that another task closes while a command waits to be written (a cluster
    client dropping a failed master's connections, say) fails with the `ConnectionError` it
    is, which every service retries or answers with 503.

    redis-py 8.1 yields to the loop between opening the connection and writing to it (the
    write runs in `asyncio.wait_for`'s task, after the health check); a `disconnect` in
    between leaves no writer, and the write fails with an AttributeError on None, which no
    service takes for Redis being unavailable: a projector stopped so during a failover.
    """

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except AttributeError as exc:
            if exc.obj is not None or exc.name not in _WRITER_CALLS:
                raise
            raise RedisConnectionError("connection closed while sending a command") from exc


_WRITER_CALLS = frozenset({"writelines", "drain"})


class NativePacking(AbstractConnection):
    """Packs commands with hiredis (C) instead of redis-py's per-argument Python loop.

    redis-py appends each argument to a growing buffer in Python, and our calls carry
    thousands of arguments (ingest claims or completes a 1,000-event batch in one script;
    the projector reads every identity of a batch in one HMGET, and its batch script takes
    each stored event as an argument): that loop costs per event. hiredis
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
