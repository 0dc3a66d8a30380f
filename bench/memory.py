"""What the read models (and ingest's idempotency records) take in Redis, by key family.

`used_memory` (INFO memory) after minus before is the figure; MEMORY USAGE of every key,
grouped by family (the key with its version, partition and names taken out), says where it
goes. Families are named as chancery/keyspace.py names the keys.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from redis.asyncio import Redis

_FAMILY = (
    (re.compile(r"^chancery:rm:v\d+:\{p\d+\}:rel:[^:]+:"), "rel:<pair>:"),
    (re.compile(r"^chancery:rm:v\d+:\{p\d+\}:"), ""),
    (re.compile(r"^chancery:rm:v\d+:"), "version "),
    (re.compile(r"^chancery:ingest:v\d+:idem:.*"), "idempotency"),
)
_NAMED = re.compile(r"^(tl|tl1|tlp|partners|person|trips|visits|trip):.*?(:events)?$")


def family(key: bytes) -> str:
    text = key.decode()
    for pattern, name in _FAMILY:
        match = pattern.match(text)
        if match:
            rest = text[match.end() :]
            if name == "idempotency":
                return name
            named = _NAMED.match(rest)
            if named:
                rest = f"{named[1]}:*{named[2] or ''}"
            return name + rest
    return text


@dataclass(frozen=True)
class RedisMemory:
    used: int  # used_memory after minus before
    families: dict[str, int]  # MEMORY USAGE summed by family

    def of(self, prefix: str) -> int:
        return sum(b for f, b in self.families.items() if f.startswith(prefix))

    def note(self, events: int, *, top: int = 8) -> str:
        """The largest families, in bytes per event."""
        ranked = sorted(self.families.items(), key=lambda item: -item[1])
        shown = ", ".join(f"{name} {size / events:.0f}" for name, size in ranked[:top])
        return f"by key family (B/event): {shown}"


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def redis_memory(redis: Redis, before: int) -> RedisMemory:
    used = await used_memory(redis) - before
    families: Counter[str] = Counter()
    keys = [k async for k in redis.scan_iter(count=1000)]
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.memory_usage(key, samples=0)
            sizes = await pipe.execute()
        for key, size in zip(chunk, sizes, strict=True):
            families[family(key)] += int(size or 0)
    return RedisMemory(used, dict(families))
