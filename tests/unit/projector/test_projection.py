"""The projector's fold, without servers: the fast path for coded events writes exactly what
the general path writes.

`ReadModelProjection(fast_paths=False)` folds every event through the domain's
`relation_effects` and `timeline_refs`; the default folds `diplomacy.event.coded` from plain
values. Both fold the same logs (coded events of every kind of actor, code, Goldstein value
and precision, mixed with other types, duplicates and retractions, in one batch or several)
into a small in-memory Redis that runs the plans as the apply script does; the two must end
in the same state, key by key.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chancery import keyspace
from chancery.contract import (
    Event,
    encode_event,
    event_key,
    partition_key,
    retraction_target,
    stamp,
)
from chancery.keyspace import PartitionSpace
from services.projector.plan import FIXED_KEYS, WritePlan
from services.projector.projection import CODED_SUFFIX, CODED_TYPE, Carry, ReadModelProjection
from services.projector.records import LogRecord
from tests.unit.contract.strategies import (
    OCCURRING_TYPES,
    SOURCES,
    build,
    occurring_events,
    retraction,
)

pytestmark = pytest.mark.unit

SPACE = PartitionSpace(1, 0)
CODED = "diplomacy.event.coded"


class MemoryRedis:
    """What the projection reads, and the apply script's effect, over plain dicts."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, Any]] = defaultdict(dict)
        self.zsets: dict[str, set[str]] = defaultdict(set)
        self.sets: dict[str, set[str]] = defaultdict(set)
        self.strings: dict[str, Any] = {}
        self.stream: list[tuple[Any, ...]] = []

    def pipeline(self, transaction: bool = False) -> _Pipeline:
        return _Pipeline(self)

    def apply(self, plan: WritePlan) -> None:
        keys = plan.keys
        args = plan.script_args()
        i = 0

        def key(at: int) -> str:
            return keys[int(args[at]) - FIXED_KEYS - 1]

        while i < len(args):
            op = args[i]
            if op == "X":
                n = int(args[i + 1])
                entries = args[i + 2 : i + 2 + 4 * n]
                self.stream += [tuple(entries[j : j + 4]) for j in range(0, len(entries), 4)]
                i += 2 + 4 * n
            elif op == "M":
                nk = int(args[i + 1])
                targets = [key(j) for j in range(i + 2, i + 2 + nk)]
                count = int(args[i + 2 + nk])
                members = args[i + 3 + nk : i + 3 + nk + count]
                for target in targets:
                    self.zsets[target].update(str(m) for m in members)
                i += 3 + nk + count
            elif op == "I":
                fields = self.hashes[key(i + 1)]
                total = int(fields.get(str(args[i + 2]), 0)) + int(args[i + 3])
                if total:
                    fields[str(args[i + 2])] = total
                else:
                    fields.pop(str(args[i + 2]), None)
                i += 4
            elif op == "T":
                self.strings[key(i + 1)] = args[i + 2]
                i += 3
            elif op == "K":
                self.strings.pop(key(i + 1), None)
                i += 2
            else:
                target, count = key(i + 1), int(args[i + 2])
                items = args[i + 3 : i + 3 + count]
                if op == "H":
                    self.hashes[target].update(zip(map(str, items[0::2]), items[1::2], strict=True))
                elif op == "D":
                    for name in items:
                        self.hashes[target].pop(str(name), None)
                elif op == "Z":
                    self.zsets[target].update(str(m) for m in items[1::2])
                elif op == "R":
                    self.zsets[target].difference_update(str(m) for m in items)
                elif op == "S":
                    self.sets[target].update(str(m) for m in items)
                else:
                    raise AssertionError(f"unknown operation {op!r}")
                i += 3 + count

    def state(self) -> dict[str, object]:
        """Every non-empty key, values as bytes where Redis would answer bytes."""
        out: dict[str, object] = {}
        for name, fields in self.hashes.items():
            if fields:
                out[name] = {k: _bytes(v) for k, v in fields.items()}
        for name, members in [*self.zsets.items(), *self.sets.items()]:
            if members:
                out[name] = sorted(members)
        out.update({k: _bytes(v) for k, v in self.strings.items()})
        out["stream"] = [tuple(_bytes(x) for x in entry) for entry in self.stream]
        return out


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class _Pipeline:
    def __init__(self, redis: MemoryRedis) -> None:
        self.redis = redis
        self.replies: list[object] = []

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def hmget(self, name: str, fields: Sequence[str]) -> None:
        self.replies.append([_maybe_bytes(self.redis.hashes[name].get(f)) for f in fields])

    def smismember(self, name: str, members: Sequence[str]) -> None:
        self.replies.append([int(m in self.redis.sets[name]) for m in members])

    def hgetall(self, name: str) -> None:
        self.replies.append({k.encode(): _bytes(v) for k, v in self.redis.hashes[name].items()})

    def get(self, name: str) -> None:
        self.replies.append(_maybe_bytes(self.redis.strings.get(name)))

    async def execute(self) -> list[object]:
        return self.replies


def _maybe_bytes(value: object) -> bytes | None:
    return None if value is None else _bytes(value)


async def _fold(batches: list[list[Event]], *, fast: bool) -> dict[str, object]:
    redis = MemoryRedis()
    projection = ReadModelProjection(redis, fast_paths=fast)  # type: ignore[arg-type]
    offset = 0
    for batch in batches:
        records = []
        for event in batch:
            records.append(LogRecord(0, offset, None, encode_event(event), event, event.key))
            offset += 1
        [plan] = await projection.plan([(SPACE, records)])
        assert isinstance(plan, WritePlan), plan
        redis.apply(plan)
    return redis.state()


TYPES = (*(CODED,) * 6, *OCCURRING_TYPES)


@st.composite
def logs(draw: st.DrawFn) -> list[list[Event]]:
    """Mostly coded events (any actors, codes, values and precisions), some of other types,
    exact duplicates and retractions, cut into one to three batches."""
    events: list[Event] = []
    for i in range(draw(st.integers(1, 30))):
        kind = draw(st.integers(0, 9))
        if kind == 0 and events:
            events.append(draw(st.sampled_from(events)))  # a duplicate past ingest
        elif kind == 1 and events:
            target = draw(st.sampled_from(events))
            events.append(retraction(f"r{i}", draw(st.sampled_from(SOURCES)), target, target.time))
        else:
            events.append(draw(occurring_events(f"e{i}", draw(st.sampled_from(TYPES)))))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=2)))
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None)
@given(logs())
async def test_the_fast_path_writes_what_the_domain_path_writes(
    batches: list[list[Event]],
) -> None:
    assert await _fold(batches, fast=True) == await _fold(batches, fast=False)


async def _fold_ahead(batches: list[list[Event]]) -> dict[str, object]:
    """As the projector folds: each batch planned while the previous one's plan is not yet
    applied, from what that plan carries (a plan that touched trips is applied first)."""
    redis = MemoryRedis()
    projection = ReadModelProjection(redis)  # type: ignore[arg-type]
    offset = 0
    pending: tuple[WritePlan, Carry] | None = None
    for batch in batches:
        records = []
        for event in batch:
            records.append(LogRecord(0, offset, None, encode_event(event), event, event.key))
            offset += 1
        if pending is not None and pending[1].trips:
            redis.apply(pending[0])
            pending = None
        reading = projection.read([(SPACE, records)], [pending[1] if pending else None])
        [(_, plan, carry)] = [planned async for planned in projection.plans(reading)]
        assert isinstance(plan, WritePlan), plan
        assert carry is not None
        if pending is not None:
            redis.apply(pending[0])
        pending = (plan, carry)
    if pending is not None:
        redis.apply(pending[0])
    return redis.state()


@settings(max_examples=150, deadline=None)
@given(logs())
async def test_a_batch_planned_before_the_previous_one_is_applied_writes_the_same(
    batches: list[list[Event]],
) -> None:
    assert await _fold_ahead(batches) == await _fold(batches, fast=True)


RECORDED = datetime(2023, 6, 1, tzinfo=UTC)


def _stamped(batches: list[list[Event]]) -> list[Event]:
    """Every event as ingest stamps it: recorded in the order identities first appear (an
    exact duplicate keeps its original's stamp), keyed as ingest keys it."""
    recorded: dict[str, datetime] = {}
    retracted: dict[str, str] = {}  # target key -> the key of its retraction
    out = []
    for event in itertools.chain.from_iterable(batches):
        target = retraction_target(event)
        if target is not None and retracted.setdefault(event_key(*target), event.key) != event.key:
            continue  # a second retraction of one event: see README, "Known limitations"
        at = recorded.setdefault(event.key, RECORDED + timedelta(minutes=len(recorded)))
        out.append(stamp(event, recorded_at=at, partition_key=partition_key(event) or "k"))
    return out


def _arrival_free(state: dict[str, object]) -> dict[str, object]:
    """A folded state without what depends on arrival alone: the stream of applied events,
    the offsets stored beside each event, and the order of identities sharing an id."""
    out = dict(state)
    out.pop("stream")
    events = out.pop(SPACE.events, {})
    assert isinstance(events, dict)
    out[SPACE.events] = {k: v.partition(b" ")[2] for k, v in events.items()}
    ids = out.pop(SPACE.event_ids, {})
    assert isinstance(ids, dict)
    out[SPACE.event_ids] = {k: sorted(v.split(b" ")) for k, v in ids.items()}
    return out


@settings(max_examples=200, deadline=None)
@given(logs(), st.data())
async def test_a_copy_stamped_later_changes_nothing_wherever_it_arrives(
    batches: list[list[Event]], data: st.DataObject
) -> None:
    """A retry that ingest re-stamped may reach the log before the original (its claim had
    lapsed while the original's send was still in flight): the read models keep the copy
    recorded first wherever the copies land, batch boundaries and folding ahead included;
    events by id, trips and people hold its bytes."""
    log = _stamped(batches)
    retractions = {e.key for e in log if retraction_target(e) is not None}
    # Not a copy of a retraction of a retraction: ahead of its target, ingest refuses it.
    copyable = [
        e
        for e in log
        if (target := retraction_target(e)) is None or event_key(*target) not in retractions
    ]
    assume(copyable)
    picks = data.draw(st.lists(st.sampled_from(copyable), min_size=1, max_size=6))
    copies = [
        stamp(e, recorded_at=RECORDED + timedelta(days=30 + i), partition_key=e.partitionkey or "k")
        for i, e in enumerate(picks)
    ]
    expected = _arrival_free(await _fold([log, copies], fast=True))
    mixed = list(log)
    for copy in copies:
        mixed.insert(data.draw(st.integers(0, len(mixed))), copy)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(mixed)), max_size=4)))
    split = [mixed[a:b] for a, b in itertools.pairwise([0, *cuts, len(mixed)])]
    assert _arrival_free(await _fold(split, fast=True)) == expected
    assert _arrival_free(await _fold(split, fast=False)) == expected
    assert _arrival_free(await _fold_ahead(split)) == expected


async def test_the_stream_names_each_new_event_by_its_key_and_the_events_hash_holds_it() -> None:
    event = _coded("s1", "CHN", "USA", "042")
    state = await _fold([[event, event]], fast=True)
    assert state["stream"] == [(b"0", event.key.encode(), CODED.encode(), b"CHN USA")]
    assert state[SPACE.events] == {event.key: b"0 " + encode_event(event)}


async def test_a_retraction_is_recorded_against_its_target() -> None:
    target = _coded("t1", "CHN", "USA", "190")
    undo = retraction("u1", target.source, target, target.time)
    state = await _fold([[target], [undo]], fast=True)
    assert state[SPACE.retractions] == {target.key: undo.key.encode()}
    assert state[SPACE.retracted] == [target.key]
    assert not any(":days" in key for key in state)  # its counts are gone with it


def _coded(event_id: str, a: str, b: str, code: str) -> Event:
    data = {"actor1": a, "actor2": b, "cameo": code, "occurred": "2023-03-01"}
    return build(CODED, event_id, SOURCES[0], data, datetime(2023, 3, 2, tzinfo=UTC))


def test_hincrby_each_is_hincrby_of_each_counter() -> None:
    deltas = {("k1", "a"): 2, ("k2", "b"): 0, ("k1", "c"): -1, ("k3", "a"): 5}
    one_by_one = WritePlan()
    one_by_one.delete("k2")
    for (key, name), delta in deltas.items():
        one_by_one.hincrby(key, name, delta)
    at_once = WritePlan()
    at_once.delete("k2")
    at_once.hincrby_each(deltas)
    assert at_once.ops == one_by_one.ops
    assert at_once.keys == one_by_one.keys == ["k2", "k1", "k3"]


def test_member_tails_made_once_are_what_the_keyspace_appends() -> None:
    """The projection builds coded events' members as order + a tail made once per fact."""
    order = "2019-10-24T00:00:00+00:00/2/2019-10-25T00:00:00+00:00 https://src 881990836"
    assert order + CODED_SUFFIX == keyspace.timeline_member(order, CODED_TYPE)
    tail = keyspace.contact_member_of("", "meeting", "2019-10-24")
    assert order + tail == keyspace.contact_member_of(order, "meeting", "2019-10-24")
