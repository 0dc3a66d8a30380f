"""The distributed servers together: three Kafka nodes and a Redis Cluster of six.

What `make run-cluster` (or `chancery up --cluster`) and the cluster tests start:

    with start_cluster_servers(state_dir) as servers:       # default ports: 9092/9094/9096,
        ensure_topics_blocking(servers.kafka.bootstrap_servers, chancery_topics(
            replication_factor=CLUSTER_REPLICATION_FACTOR,  # 3
            min_insync_replicas=CLUSTER_MIN_INSYNC_REPLICAS))   # 2
        ... services with CHANCERY_KAFKA_BOOTSTRAP_SERVERS=servers.kafka.bootstrap_servers
    # stopped here: Redis, then Kafka

Both start at once (the JVMs take longest), then each is awaited; if anything fails, what
was started is stopped before the error propagates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from .kafka_cluster import DEFAULT_CONTROLLER_PORTS, KafkaCluster
from .kafka_cluster import DEFAULT_PORTS as KAFKA_PORTS
from .redis_cluster import DEFAULT_NODE_TIMEOUT_MS, RedisCluster
from .redis_cluster import DEFAULT_PORTS as REDIS_PORTS
from .redis_server import Persistence
from .scripts import ServerError

log = logging.getLogger(__name__)

KAFKA_DIR = "kafka-cluster"
REDIS_DIR = "redis-cluster"


@dataclass(frozen=True)
class ClusterServers:
    """The handles: `kafka` and `redis`, each with its nodes (kill, start, leader lookups)."""

    kafka: KafkaCluster
    redis: RedisCluster

    @classmethod
    def on_free_ports(
        cls,
        state_dir: Path,
        *,
        redis_node_timeout_ms: int = DEFAULT_NODE_TIMEOUT_MS,
        redis_persistence: Persistence = "none",
    ) -> Self:
        """Both clusters on free ports (tests, benchmarks), not started."""
        return cls(
            KafkaCluster.on_free_ports(data_dir=state_dir / KAFKA_DIR),
            RedisCluster.on_free_ports(
                data_dir=state_dir / REDIS_DIR,
                node_timeout_ms=redis_node_timeout_ms,
                persistence=redis_persistence,
            ),
        )

    def start(
        self, *, ready_timeout_s: float = 180.0, cancel: threading.Event | None = None
    ) -> None:
        """Start both, wait for both; on any failure stop what started, then raise."""
        started: list[KafkaCluster | RedisCluster] = []
        try:
            for cluster in (self.kafka, self.redis):
                started.append(cluster)
                cluster.start()
            for cluster in (self.kafka, self.redis):
                cluster.wait_ready(ready_timeout_s, cancel=cancel)
        except BaseException:
            _stop_all(reversed(started))
            raise

    def stop(self, timeout_s: float = 30.0) -> None:
        """Redis, then Kafka; both are tried even when one fails (the first error raises)."""
        _stop_all((self.redis, self.kafka), timeout_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_all(clusters: Iterable[KafkaCluster | RedisCluster], timeout_s: float = 30.0) -> None:
    errors: list[ServerError] = []
    for cluster in clusters:
        try:
            cluster.stop(timeout_s)
        except ServerError as exc:
            log.warning("stopping %r: %s", cluster, exc)
            errors.append(exc)
    if errors:
        raise errors[0]


def start_cluster_servers(
    state_dir: Path,
    *,
    kafka_ports: Sequence[int] = KAFKA_PORTS,
    kafka_controller_ports: Sequence[int] = DEFAULT_CONTROLLER_PORTS,
    redis_ports: Sequence[int] = REDIS_PORTS,
    redis_bus_ports: Sequence[int] | None = None,
    redis_node_timeout_ms: int = DEFAULT_NODE_TIMEOUT_MS,
    redis_persistence: Persistence = "aof",
    ready_timeout_s: float = 180.0,
    cancel: threading.Event | None = None,
) -> ClusterServers:
    """Start three Kafka nodes and a Redis Cluster with their state under state_dir, and
    return the handles once both serve. The defaults are `make run-cluster`'s: the usual
    ports, Redis data kept across restarts. Stop them with `.stop()` (or use `with`)."""
    servers = ClusterServers(
        KafkaCluster(
            data_dir=state_dir / KAFKA_DIR,
            ports=kafka_ports,
            controller_ports=kafka_controller_ports,
        ),
        RedisCluster(
            data_dir=state_dir / REDIS_DIR,
            ports=redis_ports,
            bus_ports=redis_bus_ports,
            node_timeout_ms=redis_node_timeout_ms,
            persistence=redis_persistence,
        ),
    )
    servers.start(ready_timeout_s=ready_timeout_s, cancel=cancel)
    return servers
