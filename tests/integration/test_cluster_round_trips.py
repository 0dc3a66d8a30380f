"""The API's way to a Redis Cluster (`ClusterRoundTrips`), against the real cluster.

A batch across partitions, whose keys are on every master, comes back in the batch's order;
the readers' scripts run on every master and are loaded again where a master forgot them;
a blocking read over every partition's stream returns as soon as one stream has an entry,
whichever master holds it; and when a master dies, reads fail (the API answers 503) until
its replica is promoted, then go on by themselves with what was replicated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio import RedisCluster as RedisClusterClient
from redis.crc import key_slot
from redis.exceptions import ResponseError

from services.api.redis_reader import ClusterRoundTrips
from services.api.redis_reader.round_trips import Script
from services.cli.local import RedisCluster
from services.platform.redis import REDIS_UNAVAILABLE, node_url, redis_client

pytestmark = pytest.mark.integration

ECHO_KEYS = Script("return {KEYS[1], KEYS[2], ARGV[1]}")
PARTITIONS = 12
LONG_BLOCK_MS = 120_000
"""Longer than any bound below: a read that waited for its block to end fails the test."""


def key(partition: int, name: str) -> str:
    return f"chancery:test:{{p{partition}}}:{name}"


@pytest.fixture
async def cluster(redis_cluster_url: str) -> AsyncIterator[RedisClusterClient]:
    client = redis_client(redis_cluster_url, cluster=True, client_name="test")
    yield client
    await client.aclose()


@pytest.fixture
async def round_trips(
    redis_cluster_url: str, cluster: RedisClusterClient
) -> AsyncIterator[ClusterRoundTrips]:
    def node_client(host: str, port: int, blocking: bool) -> Redis:
        return redis_client(
            node_url(redis_cluster_url, host, port),
            client_name="test-stream" if blocking else "test-reads",
            socket_timeout=None,
            health_check_interval=0,
        )

    slots = redis_client(redis_cluster_url, cluster=True, client_name="test-slots")
    trips = ClusterRoundTrips(slots, node_client, scripts=(ECHO_KEYS,))
    await trips.load_scripts()
    yield trips
    await trips.aclose()
    await slots.aclose()


async def test_a_batch_over_every_master_comes_back_in_order(
    redis_cluster: RedisCluster, cluster: RedisClusterClient, round_trips: ClusterRoundTrips
) -> None:
    for p in range(PARTITIONS):
        await cluster.set(key(p, "offset"), str(p))
        await cluster.hset(key(p, "h"), mapping={"a": str(p), "b": "x"})
    view = await redis_cluster.view()
    masters = {view.master_of_slot(key_slot(key(p, "offset").encode())) for p in range(PARTITIONS)}
    assert len(masters) == 3

    commands = tuple(
        command
        for p in range(PARTITIONS)
        for command in (
            ("GET", key(p, "offset")),
            ("HMGET", key(p, "h"), "a", "zz"),
            ("ECHO", f"between {p}"),
            ECHO_KEYS.call([key(p, "offset"), key(p, "h")], f"arg {p}"),
        )
    )
    replies = await round_trips.send(commands)
    again = await round_trips.send_packed_once("batch", lambda: commands)

    expected = [
        reply
        for p in range(PARTITIONS)
        for reply in (
            str(p).encode(),
            [str(p).encode(), None],
            f"between {p}".encode(),
            [key(p, "offset").encode(), key(p, "h").encode(), f"arg {p}".encode()],
        )
    ]
    assert replies == expected
    assert again == expected


async def test_an_error_reply_is_raised_or_left_in_its_place(
    cluster: RedisClusterClient, round_trips: ClusterRoundTrips
) -> None:
    await cluster.set(key(0, "s"), "x")
    await cluster.set(key(1, "s"), "y")
    commands = (("GET", key(0, "s")), ("HGETALL", key(0, "s")), ("GET", key(1, "s")))
    with pytest.raises(ResponseError):
        await round_trips.send(commands)
    first, error, last = await round_trips.send(commands, raise_on_error=False)
    assert (first, last) == (b"x", b"y")
    assert isinstance(error, ResponseError)


async def test_scripts_a_master_forgot_are_loaded_again(
    redis_cluster: RedisCluster, cluster: RedisClusterClient, round_trips: ClusterRoundTrips
) -> None:
    await cluster.script_flush()  # on every master
    calls = tuple(ECHO_KEYS.call([key(p, "a"), key(p, "b")], str(p)) for p in range(PARTITIONS))
    replies = await round_trips.send(calls)
    assert [reply[2] for reply in replies] == [str(p).encode() for p in range(PARTITIONS)]


async def test_a_blocking_read_over_every_master_ends_with_the_first_entry(
    cluster: RedisClusterClient, round_trips: ClusterRoundTrips
) -> None:
    streams = {key(p, "stream"): "0-0" for p in range(PARTITIONS)}
    for name in streams:
        await cluster.xadd(name, {"k": "first"}, id="1-1")
    streams = dict.fromkeys(streams, "1-1")  # after what each holds: every XREAD blocks

    for p in (0, 5, 11):  # streams on different masters
        read = asyncio.create_task(
            round_trips.read_streams(streams, count=10, block_ms=LONG_BLOCK_MS)
        )
        await asyncio.sleep(0.3)  # every XREAD is blocked by now
        assert not read.done()
        await cluster.xadd(key(p, "stream"), {"k": f"from {p}"}, id="2-1")
        async with asyncio.timeout(30):  # far shorter than the block
            replies = await read
        assert replies == [(key(p, "stream").encode(), [(b"2-1", {b"k": f"from {p}".encode()})])]
        streams[key(p, "stream")] = "2-1"

    # Entries already there are all read at once, from every master, none dropped.
    for p in range(PARTITIONS):
        await cluster.xadd(key(p, "stream"), {"k": "third"}, id="3-1")
    replies = await round_trips.read_streams(streams, count=10, block_ms=LONG_BLOCK_MS)
    assert sorted(name for name, _ in replies) == sorted(s.encode() for s in streams)
    # The connections woken are in step: a short block with nothing to read returns empty.
    streams = dict.fromkeys(streams, "3-1")
    assert await round_trips.read_streams(streams, count=10, block_ms=50) == []


async def test_reads_fail_while_a_slot_has_no_master_then_go_on_by_themselves(
    redis_cluster: RedisCluster, cluster: RedisClusterClient, round_trips: ClusterRoundTrips
) -> None:
    keys = [key(p, "offset") for p in range(PARTITIONS)]
    for i, name in enumerate(keys):
        await cluster.set(name, str(i))
    for master in {cluster.get_node_from_key(name) for name in keys}:
        # WAIT: each replica has the writes before the master dies (replication is async).
        assert await cluster.execute_command("WAIT", 1, 5000, target_nodes=master) == 1
    commands = tuple(("GET", name) for name in keys)
    assert await round_trips.send(commands) == [str(i).encode() for i in range(PARTITIONS)]

    slot = key_slot(keys[0].encode())
    victim = await redis_cluster.master_of_slot(slot)
    redis_cluster.kill_node(victim)
    failed = 0
    promoted = asyncio.create_task(redis_cluster.wait_for_master(slot, not_node=victim))
    while not promoted.done():
        try:
            replies = await round_trips.send(commands)
        except REDIS_UNAVAILABLE:
            failed += 1
        else:  # an answer is whole and right, or there is none
            assert replies == [str(i).encode() for i in range(PARTITIONS)]
        await asyncio.sleep(0.05)
    await promoted

    assert failed > 0
    async with asyncio.timeout(30):
        while True:
            try:
                replies = await round_trips.send(commands)
            except REDIS_UNAVAILABLE:
                await asyncio.sleep(0.1)
                continue
            break
    assert replies == [str(i).encode() for i in range(PARTITIONS)]
