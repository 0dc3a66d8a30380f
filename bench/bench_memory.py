"""Redis bytes per event: the read models after a replay, and after the sample imports.

1. The projector's replay of N GDELT-like events (bench_projector's log; N = 50,000, or
   10,000 with quick=True) into an empty database: used_memory after minus before, per
   event. bench_projector measures the same after its 200,000-event replay: two sizes, so
   the cost per event shows whether it stays flat.
2. The repository's GDELT 2.0 export and ICEWS sample imported for real: `chancery import
   gdelt|icews` through an ingest process, applied by a projector process, into an empty
   database. Reported apart: the read models (the keys of the served version), and
   ingest's idempotency records (kept `idempotency_ttl_s`, 7 days, then gone).

No baseline: the target (< 500 bytes per event of read models) is issue 13's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx
from redis.asyncio import Redis

from chancery.auth import Scope
from services.cli.devkeys import create_key
from services.cli.local import free_port

from .bench_projector import PARTITIONS, _applied, gdelt_log, produce, projector_replay
from .framework import BenchEnv, Row
from .gdelt import ROOT
from .memory import RedisMemory, redis_memory, used_memory

NAME = "memory"
TARGET = 500
SAMPLES = ROOT / "tests" / "fixtures" / "reference"
IMPORTS = (
    ("gdelt", SAMPLES / "gdelt2_export_20191024143000.tsv.zip"),
    ("icews", SAMPLES / "icews_events_2018-06-01_02_sample.tab.zip"),
)


def _env(env: BenchEnv, topic: str, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": env.kafka_bootstrap,
        "CHANCERY_TOPIC": topic,
        "CHANCERY_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "CHANCERY_REDIS_URL": url,
        "CHANCERY_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "CHANCERY_LOG_LEVEL": "WARNING",
        "CHANCERY_LOG_JSON": "false",
    }


async def _imports(env: BenchEnv, db: int) -> tuple[int, RedisMemory, int]:
    """Import both samples through ingest, and once all are applied: (events, the read
    models' memory, the idempotency records' bytes)."""
    url = env.redis_db(db)
    redis = Redis.from_url(url)
    await redis.flushdb()
    before = await used_memory(redis)
    topic = env.new_topic(NAME, partitions=PARTITIONS)
    base = _env(env, topic, url)
    keys = env.workdir / f"keys-{topic}.json"
    key = create_key(keys, "importer", [Scope.EVENTS_WRITE])
    port = free_port()
    ingest_env = {**base, "CHANCERY_INGEST_PORT": str(port), "CHANCERY_API_KEYS_FILE": str(keys)}
    projector_env = {**base, "CHANCERY_PROJECTOR_PORT": str(free_port())}
    log = (env.workdir / f"memory-{topic}.log").open("wb")
    processes = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
            [sys.executable, "-m", module], env=e, cwd=ROOT, stdout=log, stderr=log
        )
        for module, e in (("services.ingest", ingest_env), ("services.projector", projector_env))
    ]
    try:
        ingest_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"{ingest_url}/readyz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ingest did not become ready; see {log.name}")
                await asyncio.sleep(0.2)
        cli_env = {**base, "CHANCERY_INGEST_URL": ingest_url, "CHANCERY_KEY": key}
        for dataset, path in IMPORTS:
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "services.cli", "import", dataset, str(path)],
                env=cli_env,
                cwd=ROOT,
                capture_output=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"import {dataset}: {done.stderr.decode()[-2000:]}")
        total = await _records(env, topic)
        deadline = time.monotonic() + 300
        while await _applied(redis) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the projector did not apply {total} records; see {log.name}")
            await asyncio.sleep(0.2)
        # Measured once ingest and the projector are gone: their connections' buffers are
        # theirs, not the read models'.
        _stop(processes)
        everything = await redis_memory(redis, before)
        # The records' own bytes and what Redis spends on their keys and expiry times: what
        # used_memory gives back once they are gone.
        records = [k async for k in redis.scan_iter(match="chancery:ingest:*", count=1000)]
        for start in range(0, len(records), 1000):
            await redis.delete(*records[start : start + 1000])
        models = await redis_memory(redis, before)
        return total, RedisMemory(models.used, models.families), everything.used - models.used
    finally:
        _stop(processes)
        log.close()
        await redis.flushdb()
        await redis.aclose()


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


async def _records(env: BenchEnv, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=env.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def _run(env: BenchEnv, quick: bool) -> list[Row]:
    count = 10_000 if quick else 50_000
    topic = env.new_topic(NAME, partitions=PARTITIONS)
    await produce(env.kafka_bootstrap, topic, gdelt_log(count))
    replay = await projector_replay(env, topic, count, db=4)
    assert replay.memory is not None
    per_event = replay.memory.used / count
    events, imported, idempotency = await _imports(env, db=5)
    models = imported.used
    return [
        Row(
            NAME,
            f"Redis bytes per event, {count:,}-event replay",
            "B",
            None,
            per_event,
            f"< {TARGET}",
            per_event < TARGET,
            note=f"used_memory after minus before; {replay.memory.note(count)}",
        ),
        Row(
            NAME,
            "Redis bytes per event, GDELT + ICEWS imports: read models",
            "B",
            None,
            models / events,
            f"< {TARGET}",
            models / events < TARGET,
            note=f"{events:,} events through ingest; used_memory after minus before, the "
            f"idempotency records deleted; {imported.note(events)}",
        ),
        Row(
            NAME,
            "Redis bytes per event, GDELT + ICEWS imports: idempotency records",
            "B",
            None,
            idempotency / events,
            "context",
            note="what used_memory gave back when ingest's records were deleted; they are "
            "kept 7 days (idempotency_ttl_s), then expire",
        ),
    ]


def run(env: BenchEnv, quick: bool = False) -> list[Row]:
    return asyncio.run(_run(env, quick))
