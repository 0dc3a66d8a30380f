"""The API's way to Redis against a real server: held connections and the RoundTrips seam.

HeldConnections drives redis-py's connections below its Pipeline (pack, send, read); these
tests hold it to what the readers rely on with the redis-py version the project pins:
replies as RESP gives them, an error read past without losing step, a connection the
server dropped replaced, scripts loaded again after Redis forgot them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from services.api.redis_reader.held_connections import HeldConnections
from services.api.redis_reader.round_trips import RedisRoundTrips, Script, field_map

pytestmark = pytest.mark.integration

ECHO_KEYS = Script("return {KEYS[1], ARGV[1]}")


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_db_url, socket_timeout=None)
    yield client
    await client.aclose()


async def test_replies_are_resp_as_redis_sends_them(redis: Redis) -> None:
    await redis.hset("h", mapping={"a": "1", "b": "2"})
    await redis.set("s", "x")
    held = HeldConnections(redis)
    got, hash_reply, missing, fields, members = await held.send(
        (
            ("GET", "s"),
            ("HGETALL", "h"),
            ("GET", "nothing"),
            ("HMGET", "h", "b", "zz"),
            ("SMISMEMBER", "nothing", "a"),
        )
    )
    assert got == b"x"
    assert field_map(hash_reply) == {b"a": b"1", b"b": b"2"}
    assert missing is None
    assert fields == [b"2", None]
    assert members == [0]


async def test_an_error_reply_leaves_the_connection_in_step(redis: Redis) -> None:
    await redis.set("s", "x")
    held = HeldConnections(redis, connections=1)
    with pytest.raises(ResponseError):
        await held.send((("GET", "s"), ("HGETALL", "s"), ("GET", "s")))
    first, error = await held.send((("GET", "s"), ("HGETALL", "s")), raise_on_error=False)
    assert first == b"x"
    assert isinstance(error, ResponseError)
    assert await held.send((("GET", "s"),)) == [b"x"]


async def test_a_connection_the_server_dropped_is_replaced(redis: Redis) -> None:
    await redis.set("s", "x")
    held = HeldConnections(redis, connections=1)
    (client_id,) = await held.send((("CLIENT", "ID"),))
    assert await redis.client_kill_filter(_id=str(client_id)) == 1
    assert await held.send((("GET", "s"),)) == [b"x"]


async def test_scripts_are_loaded_again_when_redis_forgot_them(
    redis: Redis, redis_db_url: str
) -> None:
    blocking = Redis.from_url(redis_db_url, socket_timeout=None)
    try:
        round_trips = RedisRoundTrips(redis, blocking, scripts=(ECHO_KEYS,))
        await round_trips.load_scripts()
        assert await round_trips.send((ECHO_KEYS.call(("k",), "v"),)) == [[b"k", b"v"]]
        await redis.script_flush()
        with pytest.raises(NoScriptError):
            await HeldConnections(redis).send((ECHO_KEYS.call(("k",), "v"),))
        assert await round_trips.send_packed_once(
            "echo", lambda: (ECHO_KEYS.call(("k",), "v"),)
        ) == [[b"k", b"v"]]
    finally:
        await blocking.aclose()


async def test_a_stream_read_waits_on_its_own_client(redis: Redis, redis_db_url: str) -> None:
    await redis.xadd("st", {"k": "v"}, id="5-1")
    blocking = Redis.from_url(redis_db_url, socket_timeout=None)
    try:
        round_trips = RedisRoundTrips(redis, blocking)
        [(name, entries)] = await round_trips.read_streams({"st": "0-0"}, count=10, block_ms=1)
        assert name == b"st"
        assert [(entry_id, fields) for entry_id, fields in entries] == [(b"5-1", {b"k": b"v"})]
        assert await round_trips.read_streams({"st": "5-1"}, count=10, block_ms=1) == []
    finally:
        await blocking.aclose()
