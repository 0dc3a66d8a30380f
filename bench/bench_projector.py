"""The projector's replay rate, beside a raw consumer that only reads and decodes.

The log: N `diplomacy.event.coded` events (N >= 200,000; 20,000 with quick=True) built from
the real rows of one GDELT 2.0 export batch as the importer maps them (bench/gdelt.py),
each row repeated under distinct ids (`<GLOBALEVENTID>-<copy>`), stamped as ingest would
(chancery.contract.stamp) and produced straight to a fresh 6-partition topic.

- baseline: an aiokafka consumer reads every record and decodes it (decode_event): the
  limit of any consumer in Python. Run before and after the projector; the faster counts.
- ours: `python -m services.projector` (a real process, default settings) replays the log
  into an empty Redis database; the rate counts from its first applied batch to its last.
  Its RSS (/proc/<pid>/status VmRSS) is sampled throughout.

Context rows: the CPU time per event of the projector process beside the raw consumer's
(the box is shared and noisy: the rates move with the load, CPU per event much less), and
that of redis-server, which runs the projector's scripts on the same cores.

Then the same replay of a log five times as long (1,000,000 events; 100,000 with quick=True)
into another empty database: the cost per event must stay flat as the log grows (the read
models grow with it, and every step reads and writes them), so its rate and its CPU time per
event (the projector's and redis-server's) are put beside the first replay's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis, RedisCluster

from chancery.contract import (
    RECORD_CONTENT_TYPE,
    decode_event,
    encode_event,
    partition_key,
    stamp,
)
from chancery.keyspace import ACTIVE_VERSION, PartitionSpace
from services.cli.local import free_port
from services.platform.kafka import LOG_COMPRESSION
from services.platform.redis import redis_client

from .framework import BenchEnv, Row, process_cpu_s
from .gdelt import ROOT, coded_events
from .memory import RedisMemory, redis_memory, used_memory

NAME = "projector"
PARTITIONS = 6
TARGET_RATE = 30_000
TARGET_RATIO = 0.5
RSS_GROWTH_LIMIT = 0.10  # "flat": after the first quarter, RSS grows less than this


# --- the log -----------------------------------------------------------------------------------


def gdelt_log(count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of `count` stamped events with distinct ids, from the real rows."""
    return list(gdelt_records(count))


def gdelt_records(count: int) -> Iterator[tuple[bytes, bytes]]:
    """`gdelt_log`, one record at a time (a log of a million is not held in memory)."""
    templates = coded_events()
    recorded = datetime(2019, 10, 24, 14, 45, tzinfo=UTC)
    for i in range(count):
        template = templates[i % len(templates)]
        copy = template.model_copy(update={"id": f"{template.id}-{i // len(templates)}"})
        key = partition_key(copy) or "x"
        event = stamp(copy, recorded_at=recorded + timedelta(microseconds=i), partition_key=key)
        yield key.encode(), encode_event(event)


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        max_batch_size=1024 * 1024,
        compression_type=LOG_COMPRESSION,  # the log as ingest writes it
    )
    await producer.start()
    try:
        headers = [("content-type", RECORD_CONTENT_TYPE.encode())]
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key, headers=headers))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


# --- the baseline: read and decode -------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    rate: float  # events/s
    cpu_us: float  # this process's CPU time per event


async def raw_consumer(bootstrap: str, topic: str, count: int) -> Raw:
    """A plain consumer that fetches and decodes every record: its rate and CPU time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        seen = 0
        started = cpu_started = 0.0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if not batches:
                continue
            if not started:
                started, cpu_started = time.perf_counter(), time.process_time()
            for records in batches.values():
                for record in records:
                    decode_event(record.value)
                seen += len(records)
        seconds = time.perf_counter() - started
        return Raw(count / seconds, (time.process_time() - cpu_started) / count * 1e6)
    finally:
        await consumer.stop()


# --- ours: the projector process --------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Replay:
    rate: float
    seconds: float
    cpu_us: float  # the projector's CPU time per event
    redis_cpu_us: float | None  # redis-server's (None: a Redis not started by the bench)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)  # (fraction done, KiB)
    memory: RedisMemory | None = None  # what the read models take in Redis, once replayed

    @property
    def peak_mib(self) -> float:
        return max(kib for _, kib in self.rss_samples) / 1024

    def rss_growth(self) -> float:
        """Relative RSS growth from the end of the first quarter to the end of the replay."""
        after = [kib for done, kib in self.rss_samples if done >= 0.25]
        if len(after) < 2:
            return 0.0
        return (max(after) - after[0]) / after[0]


async def projector_replay(env: BenchEnv, topic: str, count: int, db: int) -> Replay:
    """The projector's replay of `topic` into database `db` of the run's Redis."""
    redis_pid = env.redis.pid if env.redis is not None else None
    return await replay_into(
        env.kafka_bootstrap, env.redis_db(db), topic, count, env.workdir, redis_pids=[redis_pid]
    )


async def replay_into(
    bootstrap: str,
    url: str,
    topic: str,
    count: int,
    workdir: Path,
    *,
    cluster: bool = False,
    redis_pids: Sequence[int | None] = (),
) -> Replay:
    """`python -m services.projector` replaying `topic` (of `count` events) into the empty
    Redis at `url` (a Redis Cluster's, with `cluster`); `redis_pids`: the redis-servers whose
    CPU time it costs."""
    redis = redis_client(url, cluster=cluster, client_name="bench")
    await _flush(redis)
    # Memory is measured on one server: a cluster's is spread over its masters.
    memory_before = await used_memory(redis) if isinstance(redis, Redis) else None
    process_env = {
        **os.environ,
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CHANCERY_TOPIC": topic,
        "CHANCERY_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "CHANCERY_REDIS_URL": url,
        "CHANCERY_REDIS_CLUSTER": "true" if cluster else "false",
        "CHANCERY_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "CHANCERY_PROJECTOR_PORT": str(free_port()),
        "CHANCERY_LOG_LEVEL": "WARNING",
        "CHANCERY_LOG_JSON": "false",
    }
    if cluster:
        process_env |= {"CHANCERY_REPLICATION_FACTOR": "3", "CHANCERY_MIN_INSYNC_REPLICAS": "2"}
    log = (workdir / f"projector-{topic}.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
        [sys.executable, "-m", "services.projector"],
        env=process_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    samples: list[tuple[float, int]] = []
    pids = [pid for pid in redis_pids if pid is not None]
    try:
        started = 0.0
        applied_at_start = 0
        cpu = redis_cpu = 0.0
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the projector exited ({proc.returncode}); see {log.name}")
            applied = await _applied(redis)
            now = time.perf_counter()
            kib = rss_kib(proc.pid)
            if kib is not None:
                samples.append((applied / count, kib))
            if applied and not started:
                started, applied_at_start = now, applied
                cpu = process_cpu_s(proc.pid)
                redis_cpu = sum(process_cpu_s(pid) for pid in pids)
            if applied >= count:
                seconds = now - started
                events = count - applied_at_start
                replay = Replay(
                    events / seconds,
                    seconds,
                    (process_cpu_s(proc.pid) - cpu) / events * 1e6,
                    (sum(process_cpu_s(pid) for pid in pids) - redis_cpu) / events * 1e6
                    if pids
                    else None,
                    samples,
                )
                if isinstance(redis, Redis) and memory_before is not None:
                    replay.memory = await redis_memory(redis, memory_before)
                return replay
            await asyncio.sleep(0.05)
        raise RuntimeError("the projector did not finish in 1200 s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        await _flush(redis)
        await redis.aclose()


async def _flush(redis: Redis | RedisCluster) -> None:
    if isinstance(redis, RedisCluster):
        await redis.flushall()  # on every master
    else:
        await redis.flushdb()


async def _applied(redis: Redis | RedisCluster) -> int:
    version = await redis.get(ACTIVE_VERSION)
    if version is None:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(PARTITIONS):
            pipe.get(PartitionSpace(int(version), p).offset)
        offsets = await pipe.execute()
    return sum(int(o) + 1 for o in offsets if o is not None)


# --- the benchmark --------------------------------------------------------------------------------


async def _run(env: BenchEnv, quick: bool) -> list[Row]:
    count = 20_000 if quick else 200_000
    records = gdelt_log(count)
    topic = env.new_topic(NAME, partitions=PARTITIONS)
    await produce(env.kafka_bootstrap, topic, records)
    del records
    raw_before = await raw_consumer(env.kafka_bootstrap, topic, count)
    replay = await projector_replay(env, topic, count, db=3)
    raw_after = await raw_consumer(env.kafka_bootstrap, topic, count)
    raw = max(raw_before.rate, raw_after.rate)
    growth = replay.rss_growth()
    scaled = await _longer_log(env, count, replay)
    note = (
        f"{count:,} GDELT-like events in {replay.seconds:.1f} s; raw consumer "
        f"{raw_before.rate:,.0f} before and {raw_after.rate:,.0f} events/s after"
    )
    context = [
        Row(
            NAME,
            "CPU per event",
            "us",
            min(raw_before.cpu_us, raw_after.cpu_us),
            replay.cpu_us,
            "context",
            note="CPU time (user + system) of the projector process over the measured replay, "
            "beside the raw consumer's (fetch and decode only)",
        )
    ]
    if replay.memory is not None:
        context.append(
            Row(
                NAME,
                "Redis bytes per event",
                "B",
                None,
                replay.memory.used / count,
                "< 500",
                replay.memory.used / count < 500,
                note=f"used_memory after the replay minus before; {replay.memory.note(count)}",
            )
        )
    if replay.redis_cpu_us is not None:
        context.append(
            Row(
                NAME,
                "redis-server CPU per event",
                "us",
                None,
                replay.redis_cpu_us,
                "context",
                note="the projector's reads and scripts, on the same cores as the projector",
            )
        )
    return [
        Row(
            NAME,
            "replay rate",
            "events/s",
            None,
            replay.rate,
            f">= {TARGET_RATE:,}",
            replay.rate >= TARGET_RATE,
            note,
        ),
        Row(
            NAME,
            "replay rate vs raw read+decode",
            "events/s",
            raw,
            replay.rate,
            f"ratio >= {TARGET_RATIO:.2f}",
            replay.rate >= TARGET_RATIO * raw,
        ),
        Row(
            NAME,
            "peak RSS",
            "MiB",
            None,
            replay.peak_mib,
            f"flat: < {RSS_GROWTH_LIMIT:.0%} growth after 25%",
            growth < RSS_GROWTH_LIMIT,
            f"RSS grew {growth:.1%} from 25% of the replay to its end",
        ),
        *context,
        *scaled,
    ]


LONGER = 5
FLAT_RATE = 0.8
FLAT_CPU = 1.25


async def _longer_log(env: BenchEnv, count: int, short: Replay) -> list[Row]:
    """The replay of a log `LONGER` times as long, beside `short` (that of `count`)."""
    big = count * LONGER
    topic = env.new_topic(f"{NAME}-longer", partitions=PARTITIONS)
    await produce(env.kafka_bootstrap, topic, gdelt_records(big))
    long = await projector_replay(env, topic, big, db=4)
    what = f"{big:,} vs {count:,} events"
    rows = [
        Row(
            NAME,
            f"replay rate, {what}",
            "events/s",
            short.rate,
            long.rate,
            f">= {FLAT_RATE}x (flat)",
            long.rate >= FLAT_RATE * short.rate,
            f"{big:,} events in {long.seconds:.1f} s (the rate moves with the machine's load; "
            "CPU per event much less)",
        ),
        Row(
            NAME,
            f"CPU per event, {what}",
            "us",
            short.cpu_us,
            long.cpu_us,
            f"<= {FLAT_CPU}x (flat)",
            long.cpu_us <= FLAT_CPU * short.cpu_us,
            "the projector process's CPU time per event over each replay",
        ),
    ]
    if short.redis_cpu_us is not None and long.redis_cpu_us is not None:
        rows.append(
            Row(
                NAME,
                f"redis-server CPU per event, {what}",
                "us",
                short.redis_cpu_us,
                long.redis_cpu_us,
                f"<= {FLAT_CPU}x (flat)",
                long.redis_cpu_us <= FLAT_CPU * short.redis_cpu_us,
            )
        )
    return rows


def run(env: BenchEnv, quick: bool = False) -> list[Row]:
    return asyncio.run(_run(env, quick))
