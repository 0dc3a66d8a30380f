"""A batch's writes, collected before they are sent in one atomic script.

A plan is a flat list of operations in the apply script's own compact encoding (see
`apply_script`): every operation names its key by its index in the script's KEYS, so a key is
sent once however many operations touch it, and a command needs few arguments. Only
operations that cannot fail on the keys the projector owns exist here: no operation can
make the script stop half-way (Redis does not roll a script back).

The operations travel as one JSON array (strings and integers), which the script decodes
with Redis's cjson: packing a batch's tens of thousands of arguments one by one cost the
projector more than encoding them in one call. Byte values (stored events, entries, trips)
are not JSON: each travels as an argument of its own (a *blob*), and the operation holds
its number (an integer, where a value is otherwise a string).

  X <k> <n> <offset> ...               the events newly applied: XADD n entries to the
                                       partition's stream, ids `<offset>-1` in increasing
                                       order, and HSET each one's stored value (blobs 1 to
                                       n, in the same order) under its offset (`place_field`)
                                       in the hash k (the first op)
  I <k> <field> <delta>                HINCRBY, and HDEL the field when it reaches 0
  H <k> <n> <field> <value> ...        HSET n/2 pairs (a value: a string, or a blob's number)
  D <k> <n> <field> ...                HDEL
  Z <k> <n> 0 <member> ...             ZADD n/2 members, every score 0 (lexicographic sets)
  M <n> <k>... <c> <member> ...        ZADD c members to each of n lexicographic sets (the
                                       script gathers them: one ZADD per key)
  R <k> <n> <member> ...               ZREM
  S <k> <n> <member> ...               SADD
  T <k> <blob>                         SET (the blob's number)
  K <k>                                DEL
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Arg = str | bytes | int

_ENCODE_OPS = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

# Members per variadic operation: Lua's unpack() is bounded by its C stack (8000 slots).
CHUNK = 500
# KEYS[1..3] are the partition's offset, progress and stream: see store.RedisReadModelWriter.
FIXED_KEYS = 3


@dataclass
class WritePlan:
    """Operations in order, and the keys they touch (KEYS[4:] of the script)."""

    ops: list[str | int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    stream: list[int] = field(default_factory=list)  # the X operation's entries (offsets)
    blobs: list[bytes] = field(default_factory=list)  # byte values, numbered from 1
    stored_in: int = 0  # the KEYS index of the hash of the X entries' stored values
    events: int = 0  # identities this plan applies (for metrics)
    _index: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.stream) + len(self.ops)

    def script_args(self) -> list[Arg]:
        """The operations as the script takes them (the stream's entries first, all in one
        JSON array), then the blobs."""
        if not self.stream:
            return [_ENCODE_OPS(self.ops), *self.blobs]
        if not self.stored_in:
            raise ValueError("the events of the plan's stream have no stored values")
        ops = ["X", self.stored_in, len(self.stream), *self.stream, *self.ops]
        return [_ENCODE_OPS(ops), *self.blobs]

    def key(self, key: str) -> int:
        """The script's KEYS index of `key` (1-based, after the three fixed keys)."""
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys) + FIXED_KEYS
        return index

    def xadd(self, offset: int) -> None:
        """The stream entry of a newly applied event (entries are added in increasing
        offsets); its stored value comes with `store_new`."""
        self.stream.append(offset)

    def store_new(self, key: str, values: list[bytes]) -> None:
        """The stored values of the events of the stream, in its order, kept under their
        offsets in the hash `key`: the first blobs, before any other is numbered."""
        if len(values) != len(self.stream) or self.blobs or self.stored_in:
            raise ValueError("one stored value per stream entry, before any other blob")
        self.stored_in = self.key(key)
        self.blobs = list(values)

    def hincrby(self, key: str, name: str, delta: int) -> None:
        """Add `delta` to a counter field; the field is dropped when it reaches zero."""
        if delta:
            self.ops.extend(("I", self.key(key), name, delta))

    def hincrby_each(self, deltas: Mapping[tuple[str, str], int]) -> None:
        """`hincrby` of every (key, field) of `deltas`, in their order."""
        ops = self.ops
        key_index = self._index.get
        for (key, name), delta in deltas.items():
            if delta:
                ops += ("I", key_index(key) or self.key(key), name, delta)

    def hset(self, key: str, mapping: Mapping[str, bytes | str]) -> None:
        names = list(mapping)
        values = [v if isinstance(v, str) else self._blob(v) for v in mapping.values()]
        index = self.key(key)
        for start in range(0, len(names), CHUNK):
            end = start + CHUNK
            pairs: list[str | int] = [""] * (2 * len(names[start:end]))
            pairs[0::2] = names[start:end]
            pairs[1::2] = values[start:end]
            self.ops += ("H", index, len(pairs))
            self.ops += pairs

    def _blob(self, value: bytes) -> int:
        self.blobs.append(value)
        return len(self.blobs)

    def hdel(self, key: str, names: Iterable[str]) -> None:
        self._variadic("D", key, sorted(set(names)))

    def zadd_lex(self, key: str, members: Iterable[str]) -> None:
        """Members of a lexicographically ordered set (all scores 0, sent here: the script
        passes them on to ZADD as they are)."""
        unique = sorted(set(members))
        if not unique:
            return
        index = self.key(key)
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            scored: list[str | int] = [0] * (2 * len(chunk))
            scored[1::2] = chunk
            self.ops += ("Z", index, len(scored))
            self.ops += scored

    def zadd_lex_each(self, keys: tuple[str, ...], members: list[str]) -> None:
        """`members` (distinct) added to each lexicographic set of `keys`, sent once."""
        if not members:
            return
        indices = [self.key(key) for key in keys]
        for start in range(0, len(members), CHUNK):
            chunk = members[start : start + CHUNK]
            self.ops += ("M", len(indices), *indices, len(chunk), *chunk)

    def zrem(self, key: str, members: Iterable[str]) -> None:
        self._variadic("R", key, sorted(set(members)))

    def sadd(self, key: str, members: Iterable[str]) -> None:
        self._variadic("S", key, sorted(set(members)))

    def set(self, key: str, value: bytes) -> None:
        self.ops.extend(("T", self.key(key), self._blob(value)))

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
