"""Every command a Redis server executes, as MONITOR reports it, with the keys of each.

`monitoring(url)` opens a connection of its own, sends MONITOR and collects each command
(its arguments unescaped from MONITOR's quoted form) until the block ends. `keys_of` asks
the server itself which arguments of a command are keys (COMMAND GETKEYS), so the answer
holds for every command, scripts (EVALSHA's KEYS) included; `patterns_of` names the
arguments a command takes as a glob pattern (KEYS, SCAN ... MATCH, PSUBSCRIBE, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import ResponseError

_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}


def parse_monitor_line(line: bytes) -> list[bytes] | None:
    """`+1700000000.123456 [0 127.0.0.1:5555] "SET" "k" "v"` -> [b"SET", b"k", b"v"]."""
    text = line.decode("latin-1").rstrip("\r\n")
    if not text.startswith("+") or "]" not in text:
        return None  # "+OK", the answer to MONITOR itself
    rest = text.split("] ", 1)[1] if "] " in text else ""
    args: list[bytes] = []
    i = 0
    while i < len(rest):
        if rest[i] != '"':
            i += 1
            continue
        i += 1
        out = bytearray()
        while rest[i] != '"':
            if rest[i] == "\\":
                nxt = rest[i + 1]
                if nxt == "x":
                    out += bytes([int(rest[i + 2 : i + 4], 16)])
                    i += 4
                    continue
                out += _ESCAPES.get(nxt, nxt.encode("latin-1"))
                i += 2
                continue
            out += rest[i].encode("latin-1")
            i += 1
        args.append(bytes(out))
        i += 1
    return args


@dataclass
class Monitor:
    commands: list[list[bytes]] = field(default_factory=list)

    def containing(self, needle: bytes) -> list[list[bytes]]:
        return [c for c in self.commands if any(needle in a for a in c)]


@contextlib.asynccontextmanager
async def monitoring(url: str) -> AsyncIterator[Monitor]:
    """MONITOR on the server of `url` while the block runs (all databases)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    monitor = Monitor()
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"+OK")

    async def pump() -> None:
        while line := await reader.readline():
            args = parse_monitor_line(line)
            if args:
                monitor.commands.append(args)

    task = asyncio.create_task(pump())
    try:
        yield monitor
    finally:
        await asyncio.sleep(0.3)  # let the last commands arrive
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def keys_of(redis: Redis, command: Sequence[bytes]) -> list[bytes]:
    """The arguments of `command` that are keys, as the server says (COMMAND GETKEYS)."""
    try:
        keys = await redis.command_getkeys(*command)
    except ResponseError:  # a command with no key arguments
        return []
    return [k if isinstance(k, bytes) else str(k).encode("latin-1") for k in keys]


_PATTERN_COMMANDS = {b"KEYS", b"PSUBSCRIBE", b"PUNSUBSCRIBE", b"PUBSUB"}
_SCANS = {b"SCAN", b"HSCAN", b"SSCAN", b"ZSCAN"}


def patterns_of(command: Sequence[bytes]) -> list[bytes]:
    """The arguments `command` takes as glob patterns."""
    name = command[0].upper()
    if name in _PATTERN_COMMANDS:
        return list(command[1:])
    if name in _SCANS:
        return [
            command[i + 1] for i in range(1, len(command) - 1) if command[i].upper() == b"MATCH"
        ]
    return []
