"""What the projector's integration tests share.

- `generate_log`: a seeded, reproducible log of valid events of every type, with what real
  logs carry: duplicates that got past ingest, retractions (some arriving before their
  target, some of other retractions), late events, whole trips;
- `publish`: the records onto a topic as ingest would (key, content-type header), in order;
- `canonical_dump`: every key of a read-model version, type-aware, in a canonical form
  (no DUMP bytes), without the fields that record wall-clock time;
- `assert_matches_domain`: the Redis read models, merged over partitions, equal the pure
  domain folds of the same events;
- `ProjectorProcess`: `python -m services.projector` as a real subprocess, to kill.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis, RedisCluster

from chancery import keyspace
from chancery.contract import (
    EVENT_TYPES,
    RECORD_CONTENT_TYPE,
    EnvoyAppointed,
    Event,
    TripPayload,
    decode_event,
    encode_event,
    partition_key,
    stamp,
)
from chancery.domain import (
    Pair,
    PairLedger,
    RelationLedger,
    actors_of,
    build_ledger,
    effective,
    fold_trip,
    merge,
    occurred_of,
    order_string,
    pairs_of,
)
from chancery.keyspace import PartitionSpace
from services.cli.local import free_port
from services.platform.redis import RedisClient, redis_client

STATES = ("CHN", "USA", "RUS", "UKR", "IRN", "SAU", "FRA", "DEU", "IND", "BRA")
ACTORS = (*STATES, "NATO", "EU", "UN")
SOURCES = ("https://wire.example/feed", "urn:chancery:test")
PEOPLE = (
    {"id": "li-hui", "name": "Li Hui", "country": "CHN"},
    {"id": "antony-blinken", "name": "Antony Blinken", "country": "USA"},
    {"id": "sergey-lavrov", "name": "Sergey Lavrov", "country": "RUS"},
    {
        "id": "jens-stoltenberg",
        "name": "Jens Stoltenberg",
        "country": "NOR",
        "organisation": "NATO",
    },
    {"id": "wang-yi", "name": "Wang Yi", "country": "CHN"},
)
CAMEO = ("010", "036", "040", "042", "043", "051", "057", "111", "112", "120", "161", "190")
FIRST_DAY = date(2023, 1, 1)
DAYS = 181


# --- a reproducible log ---------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """One record as it goes on the log."""

    key: str
    value: bytes
    event: Event


@dataclass
class _Trip:
    person: dict[str, Any]
    trip_id: str
    legs: list[str]
    left: int  # events still to generate


@dataclass
class _World:
    rng: random.Random
    prefix: str = ""
    trips: list[_Trip] = field(default_factory=list)

    def day(self, *, early: bool = False) -> date:
        return FIRST_DAY + timedelta(days=self.rng.randrange(30 if early else DAYS))

    def when(self, *, early: bool = False) -> str:
        day = self.day(early=early)
        form = self.rng.random()
        if form < 0.7:
            return day.isoformat()
        if form < 0.8:
            return f"{day:%Y-%m}"
        if form < 0.9:
            year, week, _ = day.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{day.isoformat()}T{self.rng.randrange(24):02d}:{self.rng.randrange(60):02d}Z"

    def actors(self, n: int, *, exclude: str | None = None) -> list[str]:
        return self.rng.sample([a for a in ACTORS if a != exclude], n)


def _build(type_name: str, event_id: str, source: str, data: dict[str, Any]) -> Event:
    occurred = data.get("occurred")
    reported = datetime(2023, 7, 1, tzinfo=UTC)
    if occurred is not None:  # a report comes after the event (the contract checks it)
        from chancery.contract import When

        reported = max(When(occurred).end, datetime(2023, 1, 2, tzinfo=UTC))
    return EVENT_TYPES[type_name].model_validate(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": type_name,
            "time": reported.isoformat(),
            "data": data,
        }
    )


def _occurring(world: _World, event_id: str, *, early: bool) -> Event:
    rng = world.rng
    source = rng.choice(SOURCES)
    roll = rng.random()
    occurred = world.when(early=early)
    if roll < 0.55:
        a, b = world.actors(2)
        data: dict[str, Any] = {"actor1": a, "actor2": b, "cameo": rng.choice(CAMEO)}
        data["occurred"] = occurred
        if rng.random() < 0.5:
            data["goldstein"] = rng.randrange(-100, 101) / 10
        return _build("diplomacy.event.coded", event_id, source, data)
    if roll < 0.75:
        return _visit(world, event_id, source, occurred)
    data = {"occurred": occurred}
    kind = rng.choice(
        (
            "meeting.held",
            "relations.changed",
            "partnership.declared",
            "statement.made",
            "stance.declared",
            "proposal.made",
            "proposal.rejected",
            "incident.occurred",
            "envoy.appointed",
        )
    )
    if kind == "meeting.held":
        data |= {
            "parties": world.actors(rng.choice((2, 2, 3))),
            "mode": rng.choice(("in_person", "phone", "video")),
        }
    elif kind == "relations.changed":
        data |= {
            "parties": world.actors(2),
            "change": rng.choice(
                ("established", "restored", "upgraded", "downgraded", "suspended", "severed")
            ),
        }
    elif kind == "partnership.declared":
        data |= {"parties": world.actors(2), "label": rng.choice(("no limits", "strategic"))}
    elif kind == "statement.made":
        by = rng.choice(ACTORS)
        data |= {
            "by": by,
            "kind": rng.choice(("accuse", "blame", "praise", "comment")),
            "targets": world.actors(rng.randrange(3), exclude=by),
        }
    elif kind == "stance.declared":
        party = rng.choice(ACTORS)
        data |= {
            "party": party,
            "issue": "the war",
            "position": rng.choice(("supports", "opposes", "neutral")),
            "aligned_with": world.actors(rng.randrange(2), exclude=party),
        }
    elif kind == "proposal.made":
        by = rng.choice(ACTORS)
        data |= {
            "proposal_id": f"plan-{rng.randrange(20)}",
            "by": by,
            "title": "a plan",
            "regarding": world.actors(rng.randrange(3), exclude=by),
        }
    elif kind == "proposal.rejected":
        proposer = rng.choice(ACTORS)
        data |= {
            "proposal_id": f"plan-{rng.randrange(20)}",
            "proposer": proposer,
            "by": world.actors(rng.choice((1, 2)), exclude=proposer),
        }
    elif kind == "incident.occurred":
        data |= {
            "parties": world.actors(2),
            "summary": "an incident",
            "locations": rng.sample(STATES, rng.randrange(2)),
        }
    else:
        person = rng.choice(PEOPLE)
        data |= {
            "person": person,
            "appointed_by": person.get("organisation") or person["country"],
            "role": rng.choice(("envoy", "special representative")),
        }
    return _build(f"diplomacy.{kind}", event_id, source, data)


def _visit(world: _World, event_id: str, source: str, occurred: str) -> Event:
    rng = world.rng
    live = [t for t in world.trips if t.left > 0]
    if not live or rng.random() < 0.15:
        person = rng.choice(PEOPLE)
        home = person.get("organisation") or person["country"]
        legs = rng.sample(
            [s for s in STATES if s not in {home, person["country"]}], rng.choice((1, 2, 3))
        )
        trip = _Trip(person, f"{world.prefix}trip-{len(world.trips)}", legs, rng.randrange(3, 12))
        world.trips.append(trip)
        kind = "announced"
    else:
        trip = rng.choice(live)
        kind = rng.choice(
            (
                "announced",
                "leg.started",
                "leg.started",
                "leg.completed",
                "postponed",
                "rescheduled",
                "cancelled",
                "completed",
            )
        )
    trip.left -= 1
    data: dict[str, Any] = {"occurred": occurred, "trip_id": trip.trip_id, "traveller": trip.person}
    planned = f"2023-{rng.randrange(1, 7):02d}"
    if kind in {"announced", "postponed"}:
        data["legs"] = [{"country": c} for c in trip.legs]
        if rng.random() < 0.6:
            data["planned"] = planned
    elif kind == "rescheduled":
        keep = trip.legs[: max(1, len(trip.legs) - 1)]
        data |= {"legs": [{"country": c} for c in keep], "planned": planned}
        data["dropped"] = [c for c in trip.legs if c not in keep]
    elif kind in {"cancelled", "completed"}:
        data["destinations"] = [{"country": c} for c in trip.legs]
    else:
        data["country"] = rng.choice(trip.legs)
    return _build(f"diplomacy.visit.{kind}", event_id, source, data)


def _stamped(event: Event, key: str, at: datetime) -> Published:
    event = stamp(event, recorded_at=at, partition_key=key)
    return Published(key, encode_event(event), event)


def generate_log(
    count: int,
    *,
    seed: int,
    duplicates: float = 0.02,
    retractions: float = 0.02,
    prefix: str = "",
) -> list[Published]:
    """`count` records (at least) of a reproducible log.

    Besides fresh events: exact re-publications and re-stamped copies of earlier events
    (duplicates that got past ingest), retractions of earlier events, of events that only
    arrive after their retraction, and of other retractions (void), and events that
    occurred early in the half year but arrive at the end (late).
    """
    world = _World(random.Random(seed), prefix)
    rng = world.rng
    out: list[Published] = []
    keys: dict[str, str] = {}  # event_key -> partition key
    clock = datetime(2023, 7, 1, tzinfo=UTC)
    n = 0
    while len(out) < count:
        clock += timedelta(seconds=1)
        roll = rng.random()
        late = len(out) > 0.9 * count
        if out and roll < duplicates:
            original = rng.choice(out)
            if rng.random() < 0.5:
                out.append(original)  # the same bytes again
            else:
                out.append(_stamped(original.event, original.key, clock))
            continue
        if out and roll < duplicates + retractions:
            n += 1
            source = rng.choice(SOURCES)
            choice = rng.random()
            if choice < 0.6:  # an earlier event (sometimes a retraction: then void)
                target = rng.choice(out).event
                r = _retraction(f"{prefix}r{n}", source, target)
                out.append(_stamped(r, keys[target.key], clock))
                keys[r.key] = keys[target.key]
            else:  # a retraction that arrives before its target
                target = _occurring(world, f"{prefix}e{n}", early=late)
                key = partition_key(target) or "x"
                r = _retraction(f"{prefix}r{n}", source, target)
                out.append(_stamped(r, key, clock))
                out.append(_stamped(target, key, clock + timedelta(milliseconds=1)))
                keys[r.key] = keys[target.key] = key
            continue
        n += 1
        event = _occurring(world, f"{prefix}e{n}", early=late)
        key = partition_key(event) or "x"
        keys[event.key] = key
        out.append(_stamped(event, key, clock))
    return out


def _retraction(event_id: str, source: str, target: Event) -> Event:
    return _build(
        "diplomacy.event.retracted",
        event_id,
        source,
        {"target": {"source": target.source, "id": target.id}, "reason": "a correction"},
    )


# --- publishing --------------------------------------------------------------------------------


async def publish(
    bootstrap: str, topic: str, records: Iterable[Published | tuple[bytes, bytes]]
) -> int:
    """Send records in order (idempotent producer: no reordering within a partition)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for record in records:
            key, value = (
                (record.key.encode(), record.value) if isinstance(record, Published) else record
            )
            pending.append(
                await producer.send(
                    topic,
                    value=value,
                    key=key,
                    headers=[("content-type", RECORD_CONTENT_TYPE.encode())],
                )
            )
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


# --- reading the read models back ------------------------------------------------------------

VOLATILE_FIELDS = {
    keyspace.ProgressField.UPDATED_MS,
    keyspace.MetaField.CREATED_MS,
    keyspace.MetaField.READY_MS,
}


def redis_of(env: Mapping[str, str]) -> RedisClient:
    """A client of the Redis the CHANCERY_* variables name (a Redis Cluster's, when
    CHANCERY_REDIS_CLUSTER says so)."""
    cluster = env.get("CHANCERY_REDIS_CLUSTER", "").lower() == "true"
    return redis_client(env["CHANCERY_REDIS_URL"], cluster=cluster, client_name="test")


async def canonical_dump(
    redis: Redis | RedisCluster, version: int, *, skip: tuple[str, ...] = ()
) -> dict[str, object]:
    """Every key of `version`, by type, in canonical form (sorted, decoded), no wall clock.

    `skip`: key suffixes left out (for a quicker look at the read models alone). Read in
    two pipelined round trips per thousand keys (types, then values).
    """
    prefix = keyspace.version_prefix(version)
    found: list[Any] = [k async for k in redis.scan_iter(match=prefix + "*", count=1000)]
    keys = sorted(k for k in found if not (skip and k.decode().endswith(skip)))
    out: dict[str, object] = {}
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.type(key)
            kinds = [k.decode() for k in await pipe.execute()]
        async with redis.pipeline(transaction=False) as pipe:
            for key, kind in zip(chunk, kinds, strict=True):
                if kind == "string":
                    pipe.get(key)
                elif kind == "hash":
                    pipe.hgetall(key)
                elif kind == "set":
                    pipe.smembers(key)
                elif kind == "zset":
                    pipe.zrange(key, 0, -1, withscores=True)
                elif kind == "stream":
                    pipe.xrange(key)
                else:  # "none": removed since the scan
                    pipe.exists(key)
            values = await pipe.execute()
        for key, kind, value in zip(chunk, kinds, values, strict=True):
            out[key.decode().removeprefix(prefix)] = _canonical(kind, value)
    return out


def _canonical(kind: str, value: Any) -> object:
    if kind == "hash":
        return sorted((k, v) for k, v in value.items() if k.decode() not in VOLATILE_FIELDS)
    if kind == "set":
        return sorted(value)
    if kind == "stream":
        return [(i, sorted(f.items())) for i, f in value]
    if kind in ("string", "zset"):
        return value
    raise AssertionError(f"a key of type {kind} appeared or vanished while dumping")


def diff_dumps(a: Mapping[str, object], b: Mapping[str, object], *, limit: int = 10) -> list[str]:
    """The keys that differ, with what differs (empty when equal)."""
    problems = [f"only in first: {k}" for k in sorted(a.keys() - b.keys())]
    problems += [f"only in second: {k}" for k in sorted(b.keys() - a.keys())]
    for k in sorted(a.keys() & b.keys()):
        if a[k] != b[k]:
            problems.append(f"differs: {k}: {str(a[k])[:300]} != {str(b[k])[:300]}")
    return problems[:limit] + (
        [f"... {len(problems) - limit} more"] if len(problems) > limit else []
    )


async def active_version(redis: Redis | RedisCluster) -> int | None:
    raw = await redis.get(keyspace.ACTIVE_VERSION)
    return int(raw) if raw is not None else None


async def stored_offsets(
    redis: Redis | RedisCluster, version: int, partitions: int
) -> list[int | None]:
    """Each partition's stored offset (one GET each, pipelined: on a cluster they are on
    several masters)."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.get(PartitionSpace(version, p).offset)
        values = await pipe.execute()
    return [int(v) if v is not None else None for v in values]


async def wait_until_applied(
    redis: Redis | RedisCluster,
    ends: Mapping[int, int],
    *,
    timeout_s: float,
    version: int | None = None,
    poll_s: float = 0.1,
) -> int:
    """Wait until the active (or given) version has applied every offset below `ends`."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        v = version or await active_version(redis)
        if v is not None:
            offsets = await stored_offsets(redis, v, len(ends))
            last = offsets
            if all((o if o is not None else -1) + 1 >= ends[p] for p, o in enumerate(offsets)):
                return v
        await asyncio.sleep(poll_s)
    raise AssertionError(f"not applied within {timeout_s} s: offsets {last}, ends {dict(ends)}")


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        partitions = await producer.partitions_for(topic)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(o) for tp, o in ends.items()}
    finally:
        await consumer.stop()


# --- the read models against the pure domain --------------------------------------------------


@dataclass
class ReadModels:
    """The read models of one version as the API would merge them over partitions."""

    ledger: RelationLedger
    pair_timelines: dict[str, list[str]]
    country_timelines: dict[str, list[str]]
    partners: dict[str, dict[str, int]]
    trips: dict[str, object]
    visits: dict[str, list[str]]
    envoys: dict[str, set[str]]
    identities: set[str]
    stream_entries: int


def _part(key: str) -> tuple[int, str]:
    """(partition, rest) of a partition key `{pN}:rest` (the version prefix removed)."""
    tag, _, rest = key.partition(":")
    return int(tag.strip("{}p")), rest


def read_models(dump: Mapping[str, object]) -> ReadModels:
    """Reassemble the merged read models from a canonical dump, as the API reads them: a
    timeline member names its event by its place, and a country's timeline is its solo
    events and its pairs' timelines (found through its timeline partners) merged."""
    shares: dict[int, dict[Pair, PairLedger]] = defaultdict(dict)
    pair_tl: dict[str, set[str]] = defaultdict(set)
    tl_by_key: dict[tuple[int, str], set[str]] = defaultdict(set)  # (partition, key) -> members
    solo: dict[tuple[int, str], set[str]] = defaultdict(set)
    tl_partners: dict[tuple[int, str], set[str]] = defaultdict(set)
    partners: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    trips: dict[str, object] = {}
    visits: dict[str, set[str]] = defaultdict(set)
    envoys: dict[str, set[str]] = defaultdict(set)
    identities: set[str] = set()
    stored: dict[tuple[int, int], Event] = {}
    stream_entries = 0
    for key, value in dump.items():
        if key.startswith("{p"):
            p, rest = _part(key)
            if rest == "ev":
                for place, v in value:  # type: ignore[attr-defined]
                    _, raw = keyspace.decode_stored_event(v, int(place))
                    stored[(p, int(place))] = decode_event(raw)

    def public(p: int, member: bytes) -> str:
        """The public member of a stored one, checked against the event it names."""
        event = stored[(p, keyspace.timeline_place(member))]
        order = keyspace.order_code(occurred_of(event), event.source, event.id)
        place = keyspace.timeline_place(member)
        assert member.decode() == keyspace.stored_timeline_member(order, event.type, place)
        return keyspace.timeline_member(order_string(event), event.type)

    for key, value in dump.items():
        if not key.startswith("{p"):
            continue
        p, rest = _part(key)
        parts = rest.split(":")
        if parts[0] == "rel":
            pair = Pair.parse(parts[1])
            share = shares[p].setdefault(pair, PairLedger())
            items = {k: v for k, v in value}  # type: ignore[attr-defined]
            if parts[2] == "days":
                share.days = keyspace.decode_days(items)
            elif parts[2] == "status":
                share.statuses = keyspace.decode_statuses(items)
            elif parts[2] == "partnership":
                share.partnerships = keyspace.decode_partnerships(items)
            elif parts[2] == "plans":
                share.plans = keyspace.decode_plans(items)
            elif parts[2] == "contacts":
                share.contacts = dict(keyspace.decode_contact(m) for m, _ in value)  # type: ignore[attr-defined]
        elif parts[0] == "tl":
            members = {public(p, m) for m, _ in value}  # type: ignore[attr-defined]
            pair_tl[parts[1]].update(members)
            tl_by_key[(p, parts[1])].update(members)
        elif parts[0] == "tl1":
            solo[(p, parts[1])].update(public(p, m) for m, _ in value)  # type: ignore[attr-defined]
        elif parts[0] == "tlp":
            tl_partners[(p, parts[1])].update(m.decode() for m in value)  # type: ignore[attr-defined]
        elif parts[0] == "partners":
            for partner, n in value:  # type: ignore[attr-defined]
                partners[parts[1]][partner.decode()] += int(n)
        elif parts[0] == "trip" and len(parts) == 2:
            trips[parts[1]] = keyspace.decode_trip(value)  # type: ignore[arg-type]
        elif parts[0] == "visits":
            visits[parts[1]].update(m.decode() for m, _ in value)  # type: ignore[attr-defined]
        elif parts[0] == "person":
            envoys[parts[1]].update(k.decode() for k, _ in value)  # type: ignore[attr-defined]
        elif parts[0] == "ev":
            identities.update(stored[(p, int(place))].key for place, _ in value)  # type: ignore[attr-defined]
        elif parts[0] == "stream":
            stream_entries += len(value)  # type: ignore[arg-type]
    country_tl: dict[str, set[str]] = defaultdict(set)
    for (_, country), members in solo.items():
        country_tl[country].update(members)
    for (p, country), others in tl_partners.items():
        for other in others:
            country_tl[country].update(tl_by_key.get((p, Pair.of(country, other).key), set()))
    ledger = RelationLedger()
    for partition_share in shares.values():
        ledger = merge(ledger, RelationLedger(partition_share))
    return ReadModels(
        ledger=ledger,
        pair_timelines={k: sorted(v) for k, v in pair_tl.items() if v},
        country_timelines={k: sorted(v) for k, v in country_tl.items() if v},
        partners={k: dict(v) for k, v in partners.items()},
        trips=trips,
        visits={k: sorted(v) for k, v in visits.items()},
        envoys=dict(envoys),
        identities=identities,
        stream_entries=stream_entries,
    )


def expected_models(events: list[Event]) -> ReadModels:
    """The same read models from the pure domain folds over the whole log."""
    chosen = effective(events)
    ledger = build_ledger(chosen)
    pair_tl: dict[str, list[str]] = defaultdict(list)
    country_tl: dict[str, list[str]] = defaultdict(list)
    partners: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_trip: dict[str, list[Event]] = defaultdict(list)
    envoys: dict[str, set[str]] = defaultdict(set)
    for event in chosen:
        member = keyspace.timeline_member(order_string(event), event.type)
        for pair in pairs_of(event):
            pair_tl[pair.key].append(member)
        for actor in actors_of(event):
            country_tl[actor].append(member)
        if isinstance(event.data, TripPayload):
            tk = keyspace.trip_key(event.data.traveller.id, event.data.trip_id)
            by_trip[tk].append(event)
        if isinstance(event, EnvoyAppointed):
            envoys[event.data.person.id].add(event.key)
    for pair in ledger.pairs:
        count = sum(b.count for b in ledger.pair(pair).days.values())
        if count:
            partners[pair.first][pair.second] += count
            partners[pair.second][pair.first] += count
    trips = {tk: fold_trip(evs) for tk, evs in by_trip.items()}
    visits: dict[str, set[str]] = defaultdict(set)
    for tk, trip in trips.items():
        for country, member in keyspace.visit_members(tk, trip):
            visits[country].add(member)
    identities = {e.key for e in events}
    return ReadModels(
        ledger=ledger,
        pair_timelines={k: sorted(v) for k, v in pair_tl.items()},
        country_timelines={k: sorted(v) for k, v in country_tl.items()},
        partners={k: dict(v) for k, v in partners.items()},
        trips=dict(trips),
        visits={k: sorted(v) for k, v in visits.items()},
        envoys=dict(envoys),
        identities=identities,
        stream_entries=len(identities),
    )


def assert_matches_domain(dump: Mapping[str, object], events: list[Event]) -> ReadModels:
    """The read models in `dump` are the domain's folds of `events`, part by part."""
    got, want = read_models(dump), expected_models(events)
    assert got.identities == want.identities, "the stored identities differ"
    assert got.stream_entries == want.stream_entries, "one stream entry per identity"
    assert got.ledger.pairs == want.ledger.pairs, (
        f"pairs differ: {sorted(map(str, got.ledger.pairs ^ want.ledger.pairs))[:10]}"
    )
    for pair in sorted(want.ledger.pairs, key=str):
        assert got.ledger.pair(pair) == want.ledger.pair(pair), f"ledger of {pair} differs"
    assert got.ledger == want.ledger
    assert got.pair_timelines == want.pair_timelines
    assert got.country_timelines == want.country_timelines
    assert got.partners == want.partners
    assert got.trips == want.trips
    assert got.visits == want.visits
    assert got.envoys == want.envoys
    return want


def day_count(dump: Mapping[str, object]) -> int:
    """The sum of every pair's day-bucket event counts, over all partitions."""
    total = 0
    for key, value in dump.items():
        if key.endswith(":days"):
            fields: Any = value
            total += sum(int(v) for k, v in fields if k.endswith(b":n"))
    return total


def effects_count(events: list[Event]) -> int:
    """How many (event, pair) effects the effective events have: what day counts must sum to."""
    ledger = build_ledger(effective(events))
    return sum(b.count for pair in ledger.pairs for b in ledger.pair(pair).days.values())


# --- the projector as a real process ----------------------------------------------------------


class ProjectorProcess:
    """`python -m services.projector`, pointed at a test's topic and database."""

    def __init__(self, env: Mapping[str, str], log_path: Path, **settings: str) -> None:
        self._env = {
            **os.environ,
            **env,
            "CHANCERY_LOG_JSON": "false",
            "CHANCERY_PROJECTOR_PORT": str(free_port()),
            **settings,
        }
        self._log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **overrides: str) -> ProjectorProcess:
        log = self._log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.projector"],
            env={**self._env, **overrides},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait: a graceful stop (leaves the group at once)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                raise
        return int(self.proc.returncode)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_serving(self, timeout_s: float = 60) -> None:
        """Until its status endpoint answers: from then on, SIGTERM is a graceful stop."""
        url = f"http://127.0.0.1:{self._env['CHANCERY_PROJECTOR_PORT']}/healthz"
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                assert self.alive(), self.log()[-2000:]
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the projector did not serve {url} within {timeout_s} s")

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    async def owned(self) -> list[int]:
        """The partitions it owns now, as its status endpoint says (none while it cannot
        answer)."""
        url = f"http://127.0.0.1:{self._env['CHANCERY_PROJECTOR_PORT']}/status"
        async with httpx.AsyncClient(timeout=2.0) as client:
            try:
                response = await client.get(url)
            except httpx.TransportError:
                return []
        if response.status_code != 200:
            return []
        return [int(p["partition"]) for p in response.json()["partitions"]]
