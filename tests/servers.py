"""Real Kafka and Redis for the test suite (a pytest plugin, loaded by tests/conftest.py).

Where the servers come from, for each of Kafka and Redis on its own:
1. CHANCERY_TEST_KAFKA_BOOTSTRAP / CHANCERY_TEST_REDIS_URL, when set: servers you run;
2. CHANCERY_TEST_CONTAINERS=1: containers started with testcontainers (the `containers`
   extra), which needs a Docker engine: without one the session fails, it does not fall
   back, so you never believe you tested on containers when you did not;
3. otherwise the project's own servers (infra/kafka/kafka.sh, infra/redis/redis.sh) on
   free ports with their data in a temporary folder, stopped at the end of the session.

A missing server is an error, never a skip. Session fixtures: `kafka_bootstrap`,
`redis_url`, and `local_kafka` / `local_redis` (the controllable servers, for fault tests).
Per test: `kafka_topic` (a fresh topic, with `<name>.dlq`), `redis_db_url` (a flushed Redis
database of its own), `redis_prefix` and `chancery_env` (the CHANCERY_* variables of both).

The distributed servers, always the project's own on free ports, started only when a test
asks for them (a run without cluster tests pays nothing) and stopped at the end of the
session: `kafka_cluster` (three Kafka nodes) and `redis_cluster` (three masters, three
replicas). Per test: `whole_kafka_cluster` / `whole_redis_cluster` (every node up before the
test, and again after it: a fault test may leave nodes killed), `kafka_cluster_topic` (a
fresh topic with 3 replicas and min.insync.replicas=2, and its `.dlq`) and
`redis_cluster_url` (the cluster, flushed).
"""

from __future__ import annotations

import atexit
import importlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from services.cli.local import (
    CLUSTER_MIN_INSYNC_REPLICAS,
    CLUSTER_REPLICATION_FACTOR,
    KafkaCluster,
    KafkaServer,
    RedisCluster,
    RedisServer,
    ScriptCluster,
    TopicSpec,
    chancery_topics,
    ensure_topics_blocking,
    free_ports,
)

ENV_KAFKA = "CHANCERY_TEST_KAFKA_BOOTSTRAP"
ENV_REDIS = "CHANCERY_TEST_REDIS_URL"
ENV_CONTAINERS = "CHANCERY_TEST_CONTAINERS"
KAFKA_IMAGE = "apache/kafka:4.1.1"
REDIS_IMAGE = "redis:7.0"
# Enough databases for each test to get one of its own (db 0 stays unused by fixtures).
LOCAL_REDIS_DATABASES = 256
TOPIC_PARTITIONS = 6


@dataclass(frozen=True)
class KafkaEndpoint:
    bootstrap: str
    origin: str  # "env", "containers" or "local"
    server: KafkaServer | None


@dataclass(frozen=True)
class RedisEndpoint:
    url: str
    origin: str
    server: RedisServer | None


def _containers_requested() -> bool:
    return os.environ.get(ENV_CONTAINERS, "").strip().lower() in {"1", "true", "yes"}


def _require_docker() -> None:
    try:
        docker: Any = importlib.import_module("docker")
    except ImportError:
        pytest.fail(
            f"{ENV_CONTAINERS}=1 needs the `containers` extra: uv sync --extra containers",
            pytrace=False,
        )
    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine answers"
        pytest.fail(
            f"{ENV_CONTAINERS}=1 but no Docker engine answers ({exc}); unset it to use the "
            "local servers",
            pytrace=False,
        )


def _kafka_container() -> Iterator[str]:
    """apache/kafka in KRaft mode, its client port published on a port chosen here."""
    _require_docker()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    (host_port,) = free_ports(1)
    container = DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, host_port)
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,CONTROLLER://localhost:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://localhost:{host_port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    }
    for key, value in env.items():
        container.with_env(key, value)
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"localhost:{host_port}"


def _redis_container() -> Iterator[str]:
    _require_docker()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(REDIS_IMAGE).with_exposed_ports(6379)
    container.with_command(f"redis-server --save '' --databases {LOCAL_REDIS_DATABASES}")
    with container:
        wait_for_logs(container, "Ready to accept connections", timeout=60)
        host = container.get_container_host_ip()
        yield f"redis://{host}:{container.get_exposed_port(6379)}/0"


def _stop_at_exit(server: KafkaServer | RedisServer | ScriptCluster[Any]) -> None:
    """Stop the server (every node of a cluster) even when the session ends without
    fixture teardown."""

    def stop() -> None:
        if isinstance(server, ScriptCluster):
            if server.running():
                server.stop()
        elif server.is_running():
            server.stop()

    atexit.register(stop)


def private_kafka(data_dir: Path) -> KafkaServer:
    """A broker of the project's own on free loopback ports (started by `with`)."""
    port, controller_port = free_ports(2)
    return KafkaServer(port=port, controller_port=controller_port, data_dir=data_dir)


@pytest.fixture(scope="session")
def kafka_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaEndpoint]:
    if bootstrap := os.environ.get(ENV_KAFKA):
        yield KafkaEndpoint(bootstrap, "env", None)
    elif _containers_requested():
        for bootstrap in _kafka_container():
            yield KafkaEndpoint(bootstrap, "containers", None)
    else:
        server = private_kafka(tmp_path_factory.mktemp("kafka"))
        _stop_at_exit(server)
        with server:
            yield KafkaEndpoint(server.bootstrap_servers, "local", server)


@pytest.fixture(scope="session")
def redis_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisEndpoint]:
    if url := os.environ.get(ENV_REDIS):
        yield RedisEndpoint(url, "env", None)
    elif _containers_requested():
        for url in _redis_container():
            yield RedisEndpoint(url, "containers", None)
    else:
        (port,) = free_ports(1)
        server = RedisServer(
            port=port,
            data_dir=tmp_path_factory.mktemp("redis"),
            persistence="none",
            databases=LOCAL_REDIS_DATABASES,
        )
        _stop_at_exit(server)
        with server:
            yield RedisEndpoint(server.url(0), "local", server)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_endpoint: KafkaEndpoint) -> str:
    """host:port of a real broker that accepts clients."""
    return kafka_endpoint.bootstrap


@pytest.fixture(scope="session")
def redis_url(redis_endpoint: RedisEndpoint) -> str:
    """redis:// URL (database 0) of a real Redis server."""
    return redis_endpoint.url


@pytest.fixture(scope="session")
def local_kafka(kafka_endpoint: KafkaEndpoint) -> KafkaServer:
    """The broker itself, for tests that stop, kill or restart it."""
    if kafka_endpoint.server is None:
        pytest.fail(
            f"this test stops and starts the broker, which it cannot do to a broker from "
            f"{kafka_endpoint.origin}; unset {ENV_KAFKA} / {ENV_CONTAINERS}",
            pytrace=False,
        )
    return kafka_endpoint.server


@pytest.fixture(scope="session")
def local_redis(redis_endpoint: RedisEndpoint) -> RedisServer:
    """The Redis server itself, for tests that kill or restart it."""
    if redis_endpoint.server is None:
        pytest.fail(
            f"this test stops and starts Redis, which it cannot do to a server from "
            f"{redis_endpoint.origin}; unset {ENV_REDIS} / {ENV_CONTAINERS}",
            pytrace=False,
        )
    return redis_endpoint.server


def _slug(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-").lower()
    return f"{name[:60]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> str:
    """A topic of this test's own (6 partitions, kept forever), and `<topic>.dlq` beside it."""
    name = f"test.{_slug(request)}"
    ensure_topics_blocking(
        kafka_bootstrap, chancery_topics(name, f"{name}.dlq", partitions=TOPIC_PARTITIONS)
    )
    return name


@pytest.fixture
def kafka_dead_letter_topic(kafka_topic: str) -> str:
    return f"{kafka_topic}.dlq"


def make_topic(bootstrap: str, name: str, partitions: int) -> str:
    """Create one more topic in a test (names should come from `_slug`-like unique parts)."""
    ensure_topics_blocking(bootstrap, [TopicSpec(name, partitions)])
    return name


class _Databases:
    """Hands out Redis databases 1..N-1 in turn, each flushed before use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.next = 1
        client = redis.Redis.from_url(url)
        try:
            self.count = int(client.config_get("databases").get("databases") or 16)
        except redis.ResponseError:  # CONFIG disabled (a managed Redis): assume the default
            self.count = 16
        finally:
            client.close()

    def take(self) -> str:
        db = self.next
        self.next = self.next + 1 if self.next + 1 < self.count else 1
        base = self.url.rsplit("/", 1)[0] if re.search(r"/\d+$", self.url) else self.url
        url = f"{base.rstrip('/')}/{db}"
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
        return url


@pytest.fixture(scope="session")
def _redis_databases(redis_url: str) -> _Databases:
    return _Databases(redis_url)


@pytest.fixture
def redis_db_url(_redis_databases: _Databases) -> str:
    """redis:// URL of an empty database that no other test uses at the same time."""
    return _redis_databases.take()


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to this test, for code that takes one."""
    return f"test:{_slug(request)}:"


@pytest.fixture
def chancery_env(kafka_bootstrap: str, kafka_topic: str, redis_db_url: str) -> dict[str, str]:
    """The CHANCERY_* variables that point a service at this test's topic and database."""
    return {
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CHANCERY_TOPIC": kafka_topic,
        "CHANCERY_DEAD_LETTER_TOPIC": f"{kafka_topic}.dlq",
        "CHANCERY_REDIS_URL": redis_db_url,
    }


# --- the distributed servers -----------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three Kafka nodes (each a broker and a controller voter) on free ports."""
    cluster = KafkaCluster.on_free_ports(data_dir=tmp_path_factory.mktemp("kafka-cluster"))
    _stop_at_exit(cluster)
    with cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A Redis Cluster of three masters and three replicas on free ports, nothing on disk."""
    cluster = RedisCluster.on_free_ports(data_dir=tmp_path_factory.mktemp("redis-cluster"))
    _stop_at_exit(cluster)
    with cluster:
        yield cluster


@pytest.fixture
def whole_kafka_cluster(kafka_cluster: KafkaCluster) -> Iterator[KafkaCluster]:
    """The Kafka cluster with its three nodes up; any node the test leaves down is started
    again after it (and the cluster awaited), so the next test finds it whole."""
    kafka_cluster.heal()
    yield kafka_cluster
    kafka_cluster.heal()


@pytest.fixture
def whole_redis_cluster(redis_cluster: RedisCluster) -> Iterator[RedisCluster]:
    """The Redis Cluster with its six nodes up and every slot served; any node the test
    leaves down is started again after it. Which nodes are masters may differ from test to
    test (a failover swaps a master and its replica): ask, never assume."""
    redis_cluster.heal()
    yield redis_cluster
    redis_cluster.heal()


@pytest.fixture
def kafka_cluster_topic(whole_kafka_cluster: KafkaCluster, request: pytest.FixtureRequest) -> str:
    """A topic of this test's own on the cluster (6 partitions, 3 replicas each,
    min.insync.replicas=2, kept forever), and `<topic>.dlq` beside it."""
    name = f"test.{_slug(request)}"
    ensure_topics_blocking(
        whole_kafka_cluster.bootstrap_servers,
        chancery_topics(
            name,
            f"{name}.dlq",
            partitions=TOPIC_PARTITIONS,
            replication_factor=CLUSTER_REPLICATION_FACTOR,
            min_insync_replicas=CLUSTER_MIN_INSYNC_REPLICAS,
        ),
        timeout_s=60.0,
    )
    return name


@pytest.fixture
def redis_cluster_url(whole_redis_cluster: RedisCluster) -> str:
    """redis:// URL of one node of the Redis Cluster, emptied (every master flushed) for this
    test. A cluster has one database only: tests that use it take turns."""
    flush_redis_cluster(whole_redis_cluster)
    return whole_redis_cluster.url


def flush_redis_cluster(cluster: RedisCluster) -> None:
    """Empty every master of the cluster (its replicas follow)."""
    for port in _cluster_masters(cluster):
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            client.flushall()
        finally:
            client.close()


def _cluster_masters(cluster: RedisCluster) -> list[int]:
    """The ports of the masters, from ROLE (no event loop needed)."""
    masters: list[int] = []
    for node in cluster.nodes:
        client = redis.Redis(host="127.0.0.1", port=node.port)
        try:
            if client.role()[0] == b"master":
                masters.append(node.port)
        finally:
            client.close()
    return masters


# A run that executes no test must fail, even when every test was skipped or deselected.
_executed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _executed  # noqa: PLW0603 - one counter per session
    if report.when == "call" and not report.skipped:
        _executed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.option.collectonly or exitstatus != 0:
        return
    if _executed == 0:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
