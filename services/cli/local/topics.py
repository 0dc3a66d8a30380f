"""Create the topics Chancery needs, and check the ones that already exist.

Topics are created explicitly (the local broker has auto.create.topics.enable=false), with
aiokafka's admin client. ensure_topics is idempotent: a topic that exists with the wanted
partitions and configs is left alone; one that differs is an error, never silently used.

`python -m services.cli.local.topics` does it from the settings (docker-compose uses it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code

from chancery.contract.routing import DEAD_LETTER_TOPIC, DEFAULT_PARTITIONS, EVENTS_TOPIC

log = logging.getLogger(__name__)

# Names and the partition count are the contract's (chancery/contract/routing.py); how the
# topics are kept is decided here. Dead letters are rare and need no parallelism.
EVENTS_PARTITIONS = DEFAULT_PARTITIONS
DEAD_LETTER_PARTITIONS = 1
# The log is the source of truth: kept forever.
KEEP_FOREVER: Mapping[str, str] = {"retention.ms": "-1"}


class TopicMismatchError(RuntimeError):
    """A topic exists with other partitions or configs than asked for."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


def chancery_topics(
    topic: str = EVENTS_TOPIC,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    partitions: int = EVENTS_PARTITIONS,
) -> list[TopicSpec]:
    """The event log and its dead-letter topic, both kept forever."""
    return [
        TopicSpec(topic, partitions, KEEP_FOREVER),
        TopicSpec(dead_letter_topic, DEAD_LETTER_PARTITIONS, KEEP_FOREVER),
    ]


async def _started_admin(bootstrap_servers: str, timeout_s: float) -> AIOKafkaAdminClient:
    """An admin client, retrying the bootstrap while the broker comes up."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="chancery-topics",
            request_timeout_ms=int(min(timeout_s, 30) * 1000),
        )
        try:
            await admin.start()
        except KafkaConnectionError:
            await admin.close()
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        else:
            return admin


async def _describe(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, int]:
    """Partition count of each of `names` that exists (with a leader for every partition)."""
    found: dict[str, int] = {}
    for topic in await admin.describe_topics(list(names)):
        if topic["error_code"] != 0:
            continue
        partitions: list[dict[str, Any]] = topic["partitions"]
        if all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions):
            found[topic["topic"]] = len(partitions)
    return found


async def _configs(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise for_code(resource["error_code"])(resource["error_message"])
            configs[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
            }
    return configs


async def ensure_topics(
    bootstrap_servers: str, topics: Sequence[TopicSpec], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the missing topics and check all of them; return the names created.

    Waits until every partition has a leader, so a producer can use the topics at once.
    Raises TopicMismatchError when a topic exists with other partitions or configs.
    """
    admin = await _started_admin(bootstrap_servers, timeout_s)
    try:
        names = [spec.name for spec in topics]
        existing = await _describe(admin, names)
        missing = [spec for spec in topics if spec.name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(spec.name, spec.partitions, 1, topic_configs=dict(spec.configs))
                    for spec in missing
                ],
                timeout_ms=int(timeout_s * 1000),
            )
            for name, error_code, *rest in response.topic_errors:
                if error_code == 0:
                    created.append(name)
                elif error_code != TopicAlreadyExistsError.errno:  # lost a race: fine
                    raise for_code(error_code)(f"creating topic {name}: {rest}")
        # Creation is asynchronous in KRaft: wait for every partition to have a leader.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(existing := await _describe(admin, names)) < len(names):
            if loop.time() > deadline:
                msg = f"topics without leaders after {timeout_s}s: {set(names) - set(existing)}"
                raise TimeoutError(msg)
            await asyncio.sleep(0.1)
        configs = await _configs(admin, names)
        for spec in topics:
            if existing[spec.name] != spec.partitions:
                msg = (
                    f"topic {spec.name} has {existing[spec.name]} partitions, not {spec.partitions}"
                )
                raise TopicMismatchError(msg)
            for key, value in spec.configs.items():
                actual = configs.get(spec.name, {}).get(key)
                if actual != value:
                    msg = f"topic {spec.name} has {key}={actual}, not {value}"
                    raise TopicMismatchError(msg)
        if created:
            log.info("created topics %s on %s", ", ".join(created), bootstrap_servers)
        return created
    finally:
        await admin.close()


def ensure_topics_blocking(
    bootstrap_servers: str, topics: Sequence[TopicSpec], *, timeout_s: float = 30.0
) -> list[str]:
    """ensure_topics from synchronous code, even when an event loop runs in this thread.

    It runs on a private loop in a worker thread, so it never touches the caller's loop
    (pytest-asyncio's session loop, for one).
    """
    result: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            result.append(
                asyncio.run(ensure_topics(bootstrap_servers, topics, timeout_s=timeout_s))
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=work, name="ensure-topics")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def main() -> None:
    """Create the event log and dead-letter topics named by the CHANCERY_* settings."""
    from chancery.settings import CommonSettings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = CommonSettings()
    ensure_topics_blocking(
        settings.kafka_bootstrap_servers,
        chancery_topics(settings.topic, settings.dead_letter_topic),
        timeout_s=120.0,
    )


if __name__ == "__main__":
    main()
