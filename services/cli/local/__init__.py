"""The local servers and the local stack: real Kafka and Redis without Docker.

Used by the test fixtures (tests/servers.py), the benchmarks and `chancery up`:

    with KafkaServer(port=free_port(), controller_port=free_port(), data_dir=d) as kafka:
        await ensure_topics(kafka.bootstrap_servers, chancery_topics())

Each server is a thin typed front to its script in infra/ (kafka.sh, redis.sh).
"""

from __future__ import annotations

from .kafka_server import KafkaServer, fetch_kafka_jars
from .ports import free_port, free_ports, port_is_free
from .redis_server import RedisServer, install_redis
from .scripts import ScriptServer, ServerError, StopRequested
from .topics import (
    TopicMismatchError,
    TopicSpec,
    chancery_topics,
    ensure_topics,
    ensure_topics_blocking,
)

__all__ = [
    "KafkaServer",
    "RedisServer",
    "ScriptServer",
    "ServerError",
    "StopRequested",
    "TopicMismatchError",
    "TopicSpec",
    "chancery_topics",
    "ensure_topics",
    "ensure_topics_blocking",
    "fetch_kafka_jars",
    "free_port",
    "free_ports",
    "install_redis",
    "port_is_free",
]
