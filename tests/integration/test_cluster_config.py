"""Configuration that does not match the servers stops a service at start, naming the
mismatch, rather than letting it run against the wrong thing:

- a Redis Cluster setting for a single Redis server, and the reverse (every service);
- a topic with fewer in-sync replicas than the settings require (projector and ingest);
- a configured partition count that differs from the existing topic's (projector and
  ingest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from chancery.settings import ApiSettings, IngestSettings, ProjectorSettings
from services.api.app import create_app as create_api
from services.cli.local import KafkaCluster, TopicMismatchError, free_port
from services.ingest.app import create_app as create_ingest
from services.platform.redis import RedisModeError
from services.projector.app import run_live
from tests.e2e.conftest import make_keys

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOT_A_CLUSTER = r"CHANCERY_REDIS_CLUSTER=true, but the Redis at .* is a single server"
A_CLUSTER = r"is a node of a Redis Cluster .* but CHANCERY_REDIS_CLUSTER is false"
FEWER_IN_SYNC = r"min\.insync\.replicas=2, fewer in-sync replicas than the 3 required"
OTHER_COUNT = r"has 6 partitions, but 12 are configured \(CHANCERY_PARTITIONS\)"


def common(bootstrap: str, topic: str, redis_url: str, **more: Any) -> dict[str, Any]:
    return {
        "kafka_bootstrap_servers": bootstrap,
        "topic": topic,
        "dead_letter_topic": f"{topic}.dlq",
        "redis_url": redis_url,
        "log_json": False,
        **more,
    }


async def start_projector(settings: dict[str, Any]) -> None:
    await run_live(ProjectorSettings(**settings, status_port=free_port(), group_id="config"))


async def start(app: FastAPI) -> None:
    async with app.router.lifespan_context(app):
        pass


def ingest(settings: dict[str, Any]) -> FastAPI:
    return create_ingest(IngestSettings(**settings), authenticator=make_keys()[1])


def api(settings: dict[str, Any]) -> FastAPI:
    return create_api(ApiSettings(**settings), authenticator=make_keys()[1])


async def test_a_cluster_setting_for_a_single_redis_is_refused_by_every_service(
    kafka_bootstrap: str, kafka_topic: str, redis_db_url: str
) -> None:
    settings = common(kafka_bootstrap, kafka_topic, redis_db_url, redis_cluster=True)
    with pytest.raises(RedisModeError, match=NOT_A_CLUSTER):
        await start_projector(settings)
    with pytest.raises(RedisModeError, match=NOT_A_CLUSTER):
        await start(api(settings))
    with pytest.raises(RedisModeError, match=NOT_A_CLUSTER):
        await start(ingest(settings))


async def test_a_cluster_node_configured_as_a_single_redis_is_refused_by_every_service(
    kafka_bootstrap: str, kafka_topic: str, redis_cluster_url: str
) -> None:
    settings = common(kafka_bootstrap, kafka_topic, redis_cluster_url)
    with pytest.raises(RedisModeError, match=A_CLUSTER):
        await start_projector(settings)
    with pytest.raises(RedisModeError, match=A_CLUSTER):
        await start(api(settings))
    with pytest.raises(RedisModeError, match=A_CLUSTER):
        await start(ingest(settings))


def test_the_projector_process_exits_naming_the_mismatch(
    kafka_bootstrap: str, kafka_topic: str, redis_db_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CHANCERY_TOPIC": kafka_topic,
        "CHANCERY_REDIS_URL": redis_db_url,
        "CHANCERY_REDIS_CLUSTER": "true",
        "CHANCERY_PROJECTOR_PORT": str(free_port()),
        "CHANCERY_LOG_JSON": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.projector"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "the projector cannot start: CHANCERY_REDIS_CLUSTER=true" in output
    assert "Traceback" not in output


async def test_a_topic_with_fewer_in_sync_replicas_than_required_is_refused_at_start(
    whole_kafka_cluster: KafkaCluster, kafka_cluster_topic: str, redis_cluster_url: str
) -> None:
    settings = common(
        whole_kafka_cluster.bootstrap_servers,
        kafka_cluster_topic,
        redis_cluster_url,
        redis_cluster=True,
        replication_factor=3,
        min_insync_replicas=3,
    )
    with pytest.raises(TopicMismatchError, match=FEWER_IN_SYNC):
        await start_projector(settings)
    with pytest.raises(TopicMismatchError, match=FEWER_IN_SYNC):
        await start(ingest(settings))


async def test_a_partition_count_other_than_the_topics_is_refused_at_start(
    kafka_bootstrap: str, kafka_topic: str, redis_db_url: str
) -> None:
    settings = common(kafka_bootstrap, kafka_topic, redis_db_url, partitions=12)
    with pytest.raises(TopicMismatchError, match=OTHER_COUNT):
        await start_projector(settings)
    with pytest.raises(TopicMismatchError, match=OTHER_COUNT):
        await start(ingest(settings))
