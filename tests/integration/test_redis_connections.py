"""A connection that another task closes while a command waits to be written, as a Redis
Cluster client closes a failed master's connections during a failover: the command fails
with a ConnectionError (what every service retries, or answers with 503), not with redis-py's
AttributeError on its missing writer, which stopped a projector mid-failover."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from services.platform.redis import REDIS_UNAVAILABLE, ClosedWhileSending, redis_client


class _Guarded(ClosedWhileSending, Connection):
    pass


async def _open_then_closed_while_sending(
    connection_class: type[Connection], redis_url: str, socket_timeout: float | None
) -> Connection:
    """A connection, open, that 'another task' closes while a send waits on it (during its
    health check, one of the points where redis-py's send yields to the loop)."""
    parts = urlsplit(redis_url)
    connection = connection_class(
        host=parts.hostname or "127.0.0.1", port=parts.port or 6379, socket_timeout=socket_timeout
    )
    await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    async def closed_meanwhile() -> None:
        await connection.disconnect()

    connection.check_health = closed_meanwhile  # type: ignore[method-assign]
    return connection


@pytest.mark.parametrize("socket_timeout", [None, 5.0], ids=["no-timeout", "timeout"])
async def test_a_connection_closed_while_sending_fails_as_redis_unavailable(
    redis_url: str, socket_timeout: float | None
) -> None:
    connection = await _open_then_closed_while_sending(_Guarded, redis_url, socket_timeout)
    with pytest.raises(RedisConnectionError, match="closed while sending") as raised:
        await connection.send_packed_command(connection.pack_command("PING"))
    assert isinstance(raised.value, REDIS_UNAVAILABLE)
    # and the connection opens again for the next command
    await connection.send_command("PING", check_health=False)
    assert await connection.read_response() == b"PONG"
    await connection.disconnect()


async def test_redis_py_alone_fails_there_with_an_attribute_error(redis_url: str) -> None:
    """What the mixin is for; should redis-py mend it, this fails, and the mixin can go."""
    connection = await _open_then_closed_while_sending(Connection, redis_url, 5.0)
    with pytest.raises(AttributeError):
        await connection.send_packed_command(connection.pack_command("PING"))
    await connection.disconnect()


@pytest.mark.parametrize("native_packing", [False, True])
@pytest.mark.parametrize("cluster", [False, True])
def test_every_client_opens_its_connections_with_the_guard(
    cluster: bool, native_packing: bool
) -> None:
    client = redis_client(
        "redis://127.0.0.1:1/0", cluster=cluster, client_name="test", native_packing=native_packing
    )  # nothing connects before the first command
    if cluster:
        classes = [client.nodes_manager.connection_kwargs["connection_class"]]  # type: ignore[union-attr]
        classes += [node.connection_class for node in client.get_nodes()]  # type: ignore[union-attr]
    else:
        classes = [client.connection_pool.connection_class]  # type: ignore[union-attr]
    assert classes
    assert all(issubclass(c, ClosedWhileSending) for c in classes)
