"""Round trips on held connections, against a fake server: replies in order, error replies
read past (raised, or left in place), a batch packed once per key, callers waiting for a
connection, and one timeout over a round trip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.api.redis_reader.held_connections import HeldConnections

pytestmark = pytest.mark.unit

Answer = Callable[[list[bytes]], bytes | None]
Serve = Callable[[Answer], Awaitable[Redis]]


def _commands(buffer: bytearray) -> list[list[bytes]]:
    """The complete RESP commands at the head of `buffer`, taken out of it."""
    out: list[list[bytes]] = []
    while buffer:
        at, parts = 0, []
        try:
            end = buffer.index(b"\r\n", at)
            count = int(buffer[at + 1 : end])
            at = end + 2
            for _ in range(count):
                end = buffer.index(b"\r\n", at)
                size = int(buffer[at + 1 : end])
                if len(buffer) < end + 2 + size + 2:
                    return out
                parts.append(bytes(buffer[end + 2 : end + 2 + size]))
                at = end + 2 + size + 2
        except ValueError:
            return out
        del buffer[:at]
        out.append(parts)
    return out


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Serve]:
    """`await serve(answer)`: a client of a fake Redis that answers each command with
    `answer(command)` (None: no answer, ever)."""
    servers: list[asyncio.Server] = []
    clients: list[Redis] = []

    async def start(answer: Answer) -> Redis:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            buffer = bytearray()
            while data := await reader.read(65536):
                buffer += data
                for command in _commands(buffer):
                    reply = answer(command)
                    if reply is not None:
                        writer.write(reply)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        client = Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=None,
            socket_connect_timeout=1,
            max_connections=4,
        )
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        server.close()


def _echo(command: list[bytes]) -> bytes:
    if command[0] == b"FAIL":
        return b"-ERR asked to fail\r\n"
    value = b" ".join(command)
    return b"$%d\r\n%s\r\n" % (len(value), value)


async def test_replies_come_in_order_and_an_error_is_raised_after_all_are_read(
    serve: Serve,
) -> None:
    held = HeldConnections(await serve(_echo))
    commands = (("GET", "a"), ("GET", "b"))
    assert await held.send(commands) == [b"GET a", b"GET b"]
    with pytest.raises(ResponseError, match="asked to fail"):
        await held.send((("GET", "c"), ("FAIL",), ("GET", "d")))
    # the connection is still in step: the next round trip gets its own replies
    assert await held.send(commands) == [b"GET a", b"GET b"]


async def test_an_error_reply_can_be_left_in_its_place(serve: Serve) -> None:
    held = HeldConnections(await serve(_echo))
    first, error, last = await held.send(
        (("GET", "c"), ("FAIL",), ("GET", "d")), raise_on_error=False
    )
    assert (first, last) == (b"GET c", b"GET d")
    assert isinstance(error, ResponseError)
    assert "asked to fail" in str(error)


async def test_a_batch_is_packed_once_per_key(serve: Serve) -> None:
    held = HeldConnections(await serve(_echo))
    built = 0

    def build() -> tuple[tuple[str, ...], ...]:
        nonlocal built
        built += 1
        return (("GET", "k"),)

    for _ in range(3):
        assert await held.send_packed_once("k", build) == [b"GET k"]
    assert built == 1


async def test_callers_beyond_the_connections_wait_their_turn(serve: Serve) -> None:
    held = HeldConnections(await serve(_echo), connections=2)

    def get(i: int) -> Callable[[], tuple[tuple[str, ...], ...]]:
        return lambda: (("GET", str(i)),)

    replies = await asyncio.gather(*(held.send_packed_once(("get", i), get(i)) for i in range(10)))
    assert replies == [[b"GET %d" % i] for i in range(10)]


async def test_a_silent_redis_times_out(serve: Serve) -> None:
    held = HeldConnections(await serve(lambda command: None), timeout_s=0.2)
    # The guard only turns a hang into a failure; the round trip's own timeout must fire.
    async with asyncio.timeout(60):
        with pytest.raises(RedisTimeoutError):
            await held.send((("GET", "x"),))
