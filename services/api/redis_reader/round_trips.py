"""The one seam between the API's readers and Redis: every command they send goes through here.

Readers say what they need as plain commands and never touch a client, a pipeline or a
connection:

- `send(commands)`: the commands in one round trip (no transaction), the replies in order;
- `send_packed_once(key, build)`: the same, for a batch that `key` always builds the same
  (the hot relation read), so its packed bytes can be kept;
- `read_streams(streams, ...)`: XREAD BLOCK, on connections of its own so that a wait never
  holds up a read;
- `Script.call(keys, args)`: a Lua script as a command (EVALSHA) in a batch; the seam loads
  the scripts it was given, and again if Redis lost them.

Replies are RESP as parsed, without client-side reshaping: an HGETALL is a flat list of
fields and values (`field_map` makes it a dict), a missing value is None.

Every command touches the keys of one partition at most (they share its hash tag), or the
version pointer and meta hash. So a Redis Cluster implementation of `RoundTrips` can route
each command by the slot of its keys, send one batch per node concurrently and put the
replies back in order, and split an XREAD over several partitions' streams by node; the
readers would not change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError
from redis.typing import KeyT, StreamIdT

from .held_connections import Command, Commands, HeldConnections

__all__ = [
    "Command",
    "Commands",
    "RedisRoundTrips",
    "RoundTrips",
    "Script",
    "StreamReply",
    "field_map",
    "number",
]

StreamReply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]
"""XREAD's reply: per stream with entries, its name and its entries (id, fields)."""


@dataclass(frozen=True)
class Script:
    """A Lua script that reads the keys of one partition (they share its hash tag)."""

    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        # Redis names a script by the SHA-1 of its text (a name, not a safeguard)
        sha = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", sha)

    def call(self, keys: Sequence[str], *args: str | int | bytes) -> Command:
        """The command that runs this script on `keys` with `args` (EVALSHA)."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


class RoundTrips(Protocol):
    async def send(self, commands: Commands, *, raise_on_error: bool = True) -> list[Any]:
        """The replies to `commands`, in order, from one round trip. A reply that is an
        error is raised once every reply is in (with `raise_on_error` False, it is left in
        its place)."""
        ...

    async def send_packed_once(self, key: Hashable, build: Callable[[], Commands]) -> list[Any]:
        """`send(build())`, where `key` always builds the same commands."""
        ...

    async def read_streams(
        self, streams: Mapping[str, str], *, count: int, block_ms: int
    ) -> StreamReply:
        """XREAD COUNT `count` BLOCK `block_ms` over `streams` (key -> the id to read after);
        an empty list if nothing came within the block."""
        ...

    async def load_scripts(self) -> None:
        """Load every script given, so the first read runs without a retry."""
        ...


class RedisRoundTrips:
    """`RoundTrips` on one Redis server: batches on held connections, waits on a pool of
    their own."""

    def __init__(self, redis: Redis, blocking: Redis, *, scripts: Sequence[Script] = ()) -> None:
        """`redis`: the client whose connections the batches hold (best without a socket
        timeout: see HeldConnections); `blocking`: the client XREAD BLOCK waits on."""
        self._connections = HeldConnections(redis)
        self._blocking = blocking
        self._scripts = tuple(scripts)

    async def send(self, commands: Commands, *, raise_on_error: bool = True) -> list[Any]:
        try:
            return await self._connections.send(commands, raise_on_error=raise_on_error)
        except NoScriptError:
            await self.load_scripts()  # Redis restarted and lost its scripts
            return await self._connections.send(commands, raise_on_error=raise_on_error)

    async def send_packed_once(self, key: Hashable, build: Callable[[], Commands]) -> list[Any]:
        try:
            return await self._connections.send_packed_once(key, build)
        except NoScriptError:
            await self.load_scripts()
            return await self._connections.send_packed_once(key, build)

    async def read_streams(
        self, streams: Mapping[str, str], *, count: int, block_ms: int
    ) -> StreamReply:
        ids: dict[KeyT, StreamIdT] = {key: after for key, after in streams.items()}
        replies = await self._blocking.xread(ids, count=count, block=block_ms)
        # redis-py types every reply shape of both protocols; a RESP2 client gets this one
        return cast(StreamReply, replies or [])

    async def load_scripts(self) -> None:
        if self._scripts:
            await self._connections.send(tuple(("SCRIPT", "LOAD", s.text) for s in self._scripts))


def field_map(reply: Any) -> dict[bytes, Any]:
    """A hash as a reply gives it (a flat list of fields and values, or a map) as a dict."""
    if isinstance(reply, dict):
        return {(k if isinstance(k, bytes) else str(k).encode()): v for k, v in reply.items()}
    items = list(reply)
    return dict(zip(items[::2], items[1::2], strict=True))


def number(value: bytes | None) -> int | None:
    """An integer stored as text; None for a missing or empty value."""
    return int(value) if value else None
