"""The local servers and the local stack: real Kafka and Redis without Docker.

Used by the test fixtures (tests/servers.py), the benchmarks and `chancery up`:

    with KafkaServer(port=free_port(), controller_port=free_port(), data_dir=d) as kafka:
        await ensure_topics(kafka.bootstrap_servers, chancery_topics())

and, distributed, three Kafka nodes and a Redis Cluster of six (KafkaCluster, RedisCluster,
both at once with start_cluster_servers). Each server or cluster is a thin typed front to
its script in infra/ (kafka.sh, redis.sh).
"""

from __future__ import annotations

from services.platform.topics import (
    TopicMismatchError,
    TopicMissingError,
    TopicSpec,
    TopicState,
    chancery_topics,
    check_topics,
    ensure_topics,
    ensure_topics_blocking,
    topics_from_settings,
)

from .clusters import ClusterServers, start_cluster_servers
from .kafka_cluster import (
    CLUSTER_MIN_INSYNC_REPLICAS,
    CLUSTER_REPLICATION_FACTOR,
    KafkaCluster,
    KafkaClusterNode,
    PartitionState,
)
from .kafka_server import KafkaServer, fetch_kafka_jars
from .ports import free_port, free_ports, port_is_free
from .redis_cluster import ClusterView, RedisCluster, RedisClusterNode
from .redis_server import RedisServer, install_redis
from .scripts import ScriptCluster, ScriptServer, ServerError, StopRequested

__all__ = [
    "CLUSTER_MIN_INSYNC_REPLICAS",
    "CLUSTER_REPLICATION_FACTOR",
    "ClusterServers",
    "ClusterView",
    "KafkaCluster",
    "KafkaClusterNode",
    "KafkaServer",
    "PartitionState",
    "RedisCluster",
    "RedisClusterNode",
    "RedisServer",
    "ScriptCluster",
    "ScriptServer",
    "ServerError",
    "StopRequested",
    "TopicMismatchError",
    "TopicMissingError",
    "TopicSpec",
    "TopicState",
    "chancery_topics",
    "check_topics",
    "ensure_topics",
    "ensure_topics_blocking",
    "fetch_kafka_jars",
    "free_port",
    "free_ports",
    "install_redis",
    "port_is_free",
    "start_cluster_servers",
    "topics_from_settings",
]
