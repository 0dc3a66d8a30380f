"""The same work on three Kafka nodes and a Redis Cluster as on one broker and one Redis.

The clusters are the project's own (`ClusterServers.on_free_ports`: three combined Kafka
nodes; three Redis masters, each with a replica), on this same machine. They add what
distribution costs (every record copied to two more brokers and acknowledged by two; every
write copied to a replica; a client that splits each batch by master and sends the shares
at once) and, sharing the same two cores, none of the capacity more machines would bring:
the ratios say what the distribution costs here, not what a cluster of machines serves.

1. Replay: the projector (`python -m services.projector`) replays N GDELT-like events
   (bench_projector's log) from a topic with three replicas and min.insync.replicas=2 into
   the Redis Cluster; the baseline replays the same log from the run's broker into the
   run's Redis. Both rates count from the first applied batch to the last.
2. API reads: `GET /v1/relations/CHN/USA`, the seeds loaded through ingest, on the API over
   the Redis Cluster; the baseline is the same stack (ingest, projector, API as processes)
   on the run's broker and Redis; the same load generator (bench_api.load), interleaved.
3. Failover (context): a Redis master SIGKILLed, the seconds until the API answers 200
   again (the node timeout, 3 s, then the replica's election); the leader of the seeds'
   busiest partition SIGKILLed, the seconds until ingest acknowledges an event of that
   partition again (the controller fences a broker that died without warning after its
   session timeout, then elects an in-sync follower).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from redis.crc import key_slot

from chancery.auth import KeyRing, Scope, new_api_key
from chancery.contract import partition_for
from chancery.keyspace import ACTIVE_VERSION, PartitionSpace
from chancery.positions import Position
from services.cli.local import (
    CLUSTER_MIN_INSYNC_REPLICAS,
    CLUSTER_REPLICATION_FACTOR,
    ClusterServers,
    chancery_topics,
    ensure_topics_blocking,
    free_ports,
)
from services.platform.redis import redis_client

from .bench_api import SEEDS, _start, _wait_http, load, post
from .bench_projector import PARTITIONS, gdelt_records, produce, replay_into
from .framework import BenchEnv, Row

NAME = "clusters"
RELATION = "/v1/relations/CHN/USA"


@dataclass(frozen=True)
class Where:
    """Where a stack's log and read models are."""

    bootstrap: str
    redis_url: str
    cluster: bool

    def env(self) -> dict[str, str]:
        values = {
            "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "CHANCERY_REDIS_URL": self.redis_url,
            "CHANCERY_REDIS_CLUSTER": "true" if self.cluster else "false",
        }
        if self.cluster:
            values |= {
                "CHANCERY_REPLICATION_FACTOR": str(CLUSTER_REPLICATION_FACTOR),
                "CHANCERY_MIN_INSYNC_REPLICAS": str(CLUSTER_MIN_INSYNC_REPLICAS),
            }
        return values


@dataclass(frozen=True)
class ApiStack:
    ingest_url: str
    api_url: str
    read: dict[str, str]
    write: dict[str, str]


def _cluster_topic(servers: ClusterServers, name: str) -> str:
    topic = f"bench.{name}.{os.getpid()}.{time.monotonic_ns()}"
    ensure_topics_blocking(
        servers.kafka.bootstrap_servers,
        chancery_topics(
            topic,
            f"{topic}.dlq",
            partitions=PARTITIONS,
            replication_factor=CLUSTER_REPLICATION_FACTOR,
            min_insync_replicas=CLUSTER_MIN_INSYNC_REPLICAS,
        ),
        timeout_s=60.0,
    )
    return topic


@contextlib.contextmanager
def api_stack(where: Where, topic: str, workdir: Path) -> Iterator[ApiStack]:
    """Ingest, the projector and the API as processes, on `where` and `topic`."""
    workdir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    read_key, read_record = new_api_key("bench-reader", [Scope.EVENTS_READ], now=now)
    write_key, write_record = new_api_key("bench-writer", [Scope.EVENTS_WRITE], now=now)
    keys_file = workdir / "api-keys.json"
    KeyRing([read_record, write_record]).save(keys_file)
    ingest_port, api_port, status_port = free_ports(3)
    env = {
        **os.environ,
        **where.env(),
        "CHANCERY_TOPIC": topic,
        "CHANCERY_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "CHANCERY_API_KEYS_FILE": str(keys_file),
        "CHANCERY_LOG_LEVEL": "WARNING",
        "CHANCERY_INGEST_PORT": str(ingest_port),
        "CHANCERY_API_PORT": str(api_port),
        "CHANCERY_PROJECTOR_PORT": str(status_port),
        "CHANCERY_GROUP_ID": f"bench-{topic}",
        "CHANCERY_PUBLISH_TIMEOUT_S": "2",
        "CHANCERY_RETRY_AFTER_S": "1",
    }
    python = sys.executable
    processes = {
        name: _start([python, "-m", f"services.{name}"], env, workdir / f"{name}.log")
        for name in ("projector", "ingest", "api")
    }
    try:
        ingest_url = f"http://127.0.0.1:{ingest_port}"
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{ingest_url}/healthz", processes["ingest"])
        _wait_http(f"{api_url}/readyz", processes["api"], timeout_s=180)
        yield ApiStack(
            ingest_url,
            api_url,
            {"Authorization": f"Bearer {read_key}"},
            {"Authorization": f"Bearer {write_key}"},
        )
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(15)
            except Exception:  # noqa: BLE001 - a process that does not stop is killed
                process.kill()
                process.wait()


async def _seeded(stack: ApiStack) -> None:
    """The article's seeds through ingest, applied (read back with min_position)."""
    seeds = [json.loads(line) for line in SEEDS.read_text().splitlines() if line]
    async with (
        httpx.AsyncClient(base_url=stack.ingest_url, headers=stack.write, timeout=60) as ingest,
        httpx.AsyncClient(base_url=stack.api_url, headers=stack.read, timeout=60) as api,
    ):
        position = Position.parse(await post(ingest, seeds))
        async with asyncio.timeout(120):
            await _until_ok(api, RELATION, {"min_position": str(position)}, 0.1)


async def _until_ok(
    client: httpx.AsyncClient, path: str, params: dict[str, str], every_s: float
) -> None:
    while True:
        if (await client.get(path, params=params)).status_code == 200:
            return
        await asyncio.sleep(every_s)


# --- 1. replay ---------------------------------------------------------------------------------


async def replays(env: BenchEnv, servers: ClusterServers, quick: bool) -> list[Row]:
    count = 10_000 if quick else 100_000
    single_topic = env.new_topic(f"{NAME}-replay", partitions=PARTITIONS)
    cluster_topic = _cluster_topic(servers, f"{NAME}-replay")
    await produce(env.kafka_bootstrap, single_topic, gdelt_records(count))
    await produce(servers.kafka.bootstrap_servers, cluster_topic, gdelt_records(count))
    single_pid = env.redis.pid if env.redis is not None else None
    single = await replay_into(
        env.kafka_bootstrap,
        env.redis_db(5),
        single_topic,
        count,
        env.workdir,
        redis_pids=[single_pid],
    )
    cluster = await replay_into(
        servers.kafka.bootstrap_servers,
        servers.redis.url,
        cluster_topic,
        count,
        env.workdir,
        cluster=True,
        redis_pids=list(servers.redis.pids().values()),
    )
    note = (
        f"{count:,} events each; one broker and one Redis against three Kafka nodes (3 "
        "replicas, min.insync.replicas=2) and three Redis masters with a replica each, all "
        "on the same two cores"
    )
    rows = [
        Row(NAME, "replay rate, clusters vs single", "events/s", single.rate, cluster.rate,
            "- (what distribution costs here)", None, note),
        Row(NAME, "projector CPU per event, clusters vs single", "us", single.cpu_us,
            cluster.cpu_us, "-", None),
    ]  # fmt: skip
    if single.redis_cpu_us is not None and cluster.redis_cpu_us is not None:
        rows.append(
            Row(NAME, "redis-server CPU per event, clusters vs single", "us",
                single.redis_cpu_us, cluster.redis_cpu_us, "-", None,
                "the cluster's: its six nodes together (masters and replicas)")
        )  # fmt: skip
    return rows


# --- 2. API reads, 3. failover -------------------------------------------------------------------


async def reads_and_failover(env: BenchEnv, servers: ClusterServers, quick: bool) -> list[Row]:
    duration, rounds, concurrency = (3.0, 1, 16) if quick else (10.0, 2, 16)
    single_where = Where(env.kafka_bootstrap, env.redis_db(12), cluster=False)
    cluster_where = Where(servers.kafka.bootstrap_servers, servers.redis.url, cluster=True)
    single_redis = redis_client(single_where.redis_url, client_name="bench")
    await single_redis.flushdb()
    await single_redis.aclose()
    cluster_topic = _cluster_topic(servers, f"{NAME}-api")
    with (
        api_stack(single_where, env.new_topic(f"{NAME}-api"), env.workdir / "api-single") as one,
        api_stack(cluster_where, cluster_topic, env.workdir / "api-cluster") as many,
    ):
        await _seeded(one)
        await _seeded(many)
        for stack in (one, many):  # warm
            await load(stack.api_url, RELATION, headers=stack.read, concurrency=concurrency,
                       duration_s=1.0)  # fmt: skip
        single_rps: list[float] = []
        cluster_rps: list[float] = []
        for _ in range(rounds):  # interleaved: drift on a shared machine hits both alike
            for stack, into in ((one, single_rps), (many, cluster_rps)):
                rate, _ = await load(stack.api_url, RELATION, headers=stack.read,
                                     concurrency=concurrency, duration_s=duration)  # fmt: skip
                into.append(rate)
        single_rate = sum(single_rps) / rounds
        cluster_rate = sum(cluster_rps) / rounds
        redis_s = await _redis_failover(servers, many)
        kafka_s = await _kafka_failover(servers, many, cluster_topic)
    note = (
        f"{concurrency} keep-alive connections, {rounds}x{duration:.0f} s each, interleaved; "
        "the relation read merges the pair's 6 partition shares, on 3 masters for the cluster"
    )
    return [
        Row(NAME, "GET relation throughput, clusters vs single", "req/s", single_rate,
            cluster_rate, "- (what distribution costs here)", None, note),
        Row(NAME, "Redis master SIGKILLed: API answering again after", "s", None, redis_s,
            "context", None, "node timeout 3 s, then the replica's election; 503 meanwhile"),
        Row(NAME, "Kafka leader SIGKILLed: its partition accepting again after", "s", None,
            kafka_s, "context", None,
            "broker session timeout (9 s) fences the dead leader, then a follower in sync "
            "leads; the other brokers' partitions accept throughout"),
    ]  # fmt: skip


async def _redis_failover(servers: ClusterServers, stack: ApiStack) -> float:
    redis = redis_client(servers.redis.url, cluster=True, client_name="bench")
    try:
        version = int(await redis.get(ACTIVE_VERSION) or 1)
    finally:
        await redis.aclose()
    key = PartitionSpace(version, 0).offset
    victim = await servers.redis.master_of_key(key)
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.read, timeout=30) as api:
        servers.redis.kill_node(victim)
        killed = time.perf_counter()
        async with asyncio.timeout(120):
            await _until_ok(api, RELATION, {}, 0.05)
        back = time.perf_counter() - killed
    await servers.redis.wait_for_master(key_slot(key.encode()), not_node=victim)
    await asyncio.to_thread(servers.redis.start_node, victim)
    await servers.redis.wait_for_replica(victim)
    return back


async def _kafka_failover(servers: ClusterServers, stack: ApiStack, topic: str) -> float:
    partition = partition_for(b"CHN|USA", PARTITIONS)
    leader = await servers.kafka.leader_of(topic, partition)
    async with httpx.AsyncClient(
        base_url=stack.ingest_url, headers=stack.write, timeout=30
    ) as ingest:
        servers.kafka.kill_node(leader)
        killed = time.perf_counter()
        n = 0
        async with asyncio.timeout(180):
            while True:
                n += 1
                event = {
                    "specversion": "1.0",
                    "id": f"failover-{n}",
                    "source": "https://bench.example/clusters",
                    "type": "diplomacy.event.coded",
                    "time": "2024-01-02T00:00:00Z",
                    "data": {"actor1": "CHN", "actor2": "USA", "cameo": "040",
                             "occurred": "2024-01-01"},
                }  # fmt: skip
                response = await ingest.post(
                    "/v1/events",
                    content=json.dumps(event),
                    headers={"Content-Type": "application/cloudevents+json"},
                )
                if response.status_code == 202:
                    break
                await asyncio.sleep(0.1)
        back = time.perf_counter() - killed
    await asyncio.to_thread(servers.kafka.start_node, leader)
    await servers.kafka.wait_for_isr(topic, size=3, timeout_s=180)
    return back


async def _run(env: BenchEnv, servers: ClusterServers, quick: bool) -> list[Row]:
    return [*await replays(env, servers, quick), *await reads_and_failover(env, servers, quick)]


def run(env: BenchEnv, quick: bool = False) -> list[Row]:
    servers = ClusterServers.on_free_ports(env.workdir / "clusters")
    servers.start()
    try:
        return asyncio.run(_run(env, servers, quick))
    finally:
        servers.stop()
