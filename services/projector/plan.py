"""A batch's writes, collected before they are sent in one atomic script."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .store import MAX_COMMAND_ARGS, Command

# Members per variadic command, well under the Lua unpack limit.
_CHUNK = 500


@dataclass
class WritePlan:
    """Commands in order, and every key they touch (passed to the script as KEYS)."""

    commands: list[Command] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def add(self, key: str, *command: str | bytes | int) -> None:
        """A command whose first argument after the name is `key`."""
        assert len(command) + 1 <= MAX_COMMAND_ARGS
        self.keys.add(key)
        self.commands.append((command[0], key, *command[1:]))

    def hset(self, key: str, mapping: dict[str, bytes | str | int]) -> None:
        items = list(mapping.items())
        for start in range(0, len(items), _CHUNK):
            flat: list[str | bytes | int] = []
            for name, value in items[start : start + _CHUNK]:
                flat.extend((name, value))
            self.add(key, "HSET", *flat)

    def zadd_lex(self, key: str, members: Iterable[str]) -> None:
        """Members of a lexicographically ordered set (all scores 0)."""
        ordered = sorted(set(members))
        for start in range(0, len(ordered), _CHUNK):
            flat: list[str | bytes | int] = []
            for member in ordered[start : start + _CHUNK]:
                flat.extend((0, member))
            self.add(key, "ZADD", *flat)

    def zrem(self, key: str, members: Iterable[str]) -> None:
        ordered = sorted(set(members))
        for start in range(0, len(ordered), _CHUNK):
            self.add(key, "ZREM", *ordered[start : start + _CHUNK])

    def hincrby(self, key: str, field_name: str, delta: int, *, drop_zero: bool = False) -> None:
        if delta == 0:
            return
        self.add(key, "HINCRBY_DROP0" if drop_zero else "HINCRBY", field_name, delta)

    def __len__(self) -> int:
        return len(self.commands)
