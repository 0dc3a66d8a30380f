"""A batch's writes, collected before they are sent in one atomic script.

A plan is a flat list of operations in the apply script's own compact encoding (see
`store._APPLY`): every operation names its key by its index in the script's KEYS, so a key is
sent once however many operations touch it, and a command needs few arguments. Only
operations that cannot fail on the keys the projector owns exist here: no operation can
make the script stop half-way (Redis does not roll a script back).

  X <offset> <event> <type> <actors>   XADD to the partition's stream, id `<offset>-1`
  I <k> <field> <delta>                HINCRBY, and HDEL the field when it reaches 0
  H <k> <n> <field> <value> ...        HSET n/2 pairs
  D <k> <n> <field> ...                HDEL
  Z <k> <n> <member> ...               ZADD, every score 0 (lexicographic sets)
  R <k> <n> <member> ...               ZREM
  S <k> <n> <member> ...               SADD
  T <k> <value>                        SET
  K <k>                                DEL
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Arg = str | bytes | int

# Members per variadic operation: Lua's unpack() is bounded by its C stack (8000 slots).
CHUNK = 500
# KEYS[1..3] are the partition's offset, progress and stream: see store.RedisReadModelWriter.
FIXED_KEYS = 3


@dataclass
class WritePlan:
    """Operations in order, and the keys they touch (KEYS[4:] of the script)."""

    ops: list[Arg] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    events: int = 0  # identities this plan applies (for metrics)
    _index: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ops)

    def key(self, key: str) -> int:
        """The script's KEYS index of `key` (1-based, after the three fixed keys)."""
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys) + FIXED_KEYS
        return index

    def xadd(self, offset: int, event: bytes, event_type: str, actors: str) -> None:
        self.ops.extend(("X", offset, event, event_type, actors))

    def hincrby(self, key: str, name: str, delta: int) -> None:
        """Add `delta` to a counter field; the field is dropped when it reaches zero."""
        if delta:
            self.ops.extend(("I", self.key(key), name, delta))

    def hset(self, key: str, mapping: dict[str, bytes]) -> None:
        items = list(mapping.items())
        index = self.key(key)
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            self.ops.extend(("H", index, 2 * len(chunk)))
            for name, value in chunk:
                self.ops.append(name)
                self.ops.append(value)

    def hdel(self, key: str, names: Iterable[str]) -> None:
        self._variadic("D", key, sorted(set(names)))

    def zadd_lex(self, key: str, members: Iterable[str]) -> None:
        """Members of a lexicographically ordered set (all scores 0)."""
        self._variadic("Z", key, sorted(set(members)))

    def zrem(self, key: str, members: Iterable[str]) -> None:
        self._variadic("R", key, sorted(set(members)))

    def sadd(self, key: str, members: Iterable[str]) -> None:
        self._variadic("S", key, sorted(set(members)))

    def set(self, key: str, value: bytes) -> None:
        self.ops.extend(("T", self.key(key), value))

    def delete(self, key: str) -> None:
        self.ops.extend(("K", self.key(key)))

    def _variadic(self, op: str, key: str, members: list[str]) -> None:
        if not members:
            return  # an empty HDEL/ZADD/ZREM/SADD is an error in Redis: never send one
        index = self.key(key)
        for start in range(0, len(members), CHUNK):
            chunk = members[start : start + CHUNK]
            self.ops.extend((op, index, len(chunk)))
            self.ops.extend(chunk)
