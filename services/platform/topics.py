"""Create the topics Chancery needs, and check the ones that already exist.

Topics are created explicitly (the local brokers have auto.create.topics.enable=false), with
aiokafka's admin client. ensure_topics is idempotent: a topic that exists and meets its spec
is left alone; one that does not is an error at start, never silently used:

- partitions: a new topic gets the spec's count. An existing topic keeps whatever count it
  has, unless the count was configured (`require_partitions`, CHANCERY_PARTITIONS) and
  differs: a key's partition is a function of the count, so changing it moves keys.
- durability: a new topic gets the spec's replication factor and min.insync.replicas; an
  existing topic with fewer replicas, or a lower min.insync.replicas, is refused (writes
  acknowledged by fewer copies than required could be lost).
- configs (retention): exactly as asked.

`check_topics` runs the same checks without creating anything: ingest and the projector
call it at start, so a topic that does not meet the settings stops them with the reason.
`python -m services.cli.local.topics` creates them from the settings (docker-compose uses it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from chancery.contract.routing import DEAD_LETTER_TOPIC, DEFAULT_PARTITIONS, EVENTS_TOPIC

if TYPE_CHECKING:
    from chancery.settings import CommonSettings

log = logging.getLogger(__name__)

# Names and the default partition count are the contract's (chancery/contract/routing.py);
# how the topics are kept is decided here. Dead letters are rare and need no parallelism.
DEAD_LETTER_PARTITIONS = 1
# The log is the source of truth: kept forever.
KEEP_FOREVER: Mapping[str, str] = {"retention.ms": "-1"}
MIN_INSYNC_REPLICAS = "min.insync.replicas"
# Errors of one request to one broker (a node just killed, say): another try, maybe through
# another node, may succeed.
TRANSIENT = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, KafkaTimeoutError)

T = TypeVar("T")


class TopicMismatchError(RuntimeError):
    """A topic exists with other partitions, fewer replicas or other configs than asked for."""


class TopicMissingError(TopicMismatchError):
    """A topic does not exist (or a partition of it has no leader)."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic as Chancery wants it.

    `partitions` is the count a new topic gets; with `require_partitions` an existing topic
    must have exactly that many, otherwise it keeps its own. An existing topic must have at
    least `replication_factor` replicas and `min_insync_replicas`, and exactly `configs`.
    """

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = 1
    min_insync_replicas: int = 1
    require_partitions: bool = True

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.replication_factor < 1 or self.min_insync_replicas < 1:
            msg = f"topic {self.name}: partitions, replicas and min in-sync replicas must be >= 1"
            raise ValueError(msg)
        if self.min_insync_replicas > self.replication_factor:
            msg = (
                f"topic {self.name}: min.insync.replicas={self.min_insync_replicas} is more "
                f"than the replication factor {self.replication_factor}: no write could succeed"
            )
            raise ValueError(msg)
        if MIN_INSYNC_REPLICAS in self.configs:
            msg = f"topic {self.name}: set min_insync_replicas, not configs[{MIN_INSYNC_REPLICAS}]"
            raise ValueError(msg)


@dataclass(frozen=True)
class TopicState:
    """What the brokers say of an existing topic."""

    name: str
    partitions: int
    replication_factor: int  # the fewest replicas of any partition
    configs: Mapping[str, str]


def topic_problems(spec: TopicSpec, state: TopicState) -> list[str]:
    """Why `state` does not meet `spec` (nothing when it does): the rules of the module doc."""
    problems: list[str] = []
    if spec.require_partitions and state.partitions != spec.partitions:
        problems.append(
            f"topic {spec.name} has {state.partitions} partitions, but {spec.partitions} are "
            f"configured (CHANCERY_PARTITIONS): a key's partition depends on the count, so it "
            f"cannot change under an existing log; unset the setting to use the topic's "
            f"{state.partitions}, or use a new topic"
        )
    if state.replication_factor < spec.replication_factor:
        problems.append(
            f"topic {spec.name} has {state.replication_factor} replica(s) per partition, fewer "
            f"than the {spec.replication_factor} required (CHANCERY_REPLICATION_FACTOR)"
        )
    raw = state.configs.get(MIN_INSYNC_REPLICAS)
    min_isr = int(raw) if raw is not None and raw.strip().isdigit() else None
    if min_isr is None or min_isr < spec.min_insync_replicas:
        problems.append(
            f"topic {spec.name} has {MIN_INSYNC_REPLICAS}={raw}, fewer in-sync replicas than "
            f"the {spec.min_insync_replicas} required (CHANCERY_MIN_INSYNC_REPLICAS): a write "
            f"could be acknowledged by fewer copies"
        )
    for key, value in spec.configs.items():
        actual = state.configs.get(key)
        if actual != value:
            problems.append(f"topic {spec.name} has {key}={actual}, not {value}")
    return problems


def chancery_topics(
    topic: str = EVENTS_TOPIC,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    partitions: int | None = None,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> list[TopicSpec]:
    """The event log and its dead-letter topic, both kept forever, equally durable.

    `partitions=None`: a new log gets DEFAULT_PARTITIONS and an existing one keeps its count.
    The dead-letter topic is created with one partition and accepted with any.
    """
    durability = {
        "replication_factor": replication_factor,
        "min_insync_replicas": min_insync_replicas,
    }
    return [
        TopicSpec(
            topic,
            DEFAULT_PARTITIONS if partitions is None else partitions,
            KEEP_FOREVER,
            require_partitions=partitions is not None,
            **durability,
        ),
        TopicSpec(
            dead_letter_topic,
            DEAD_LETTER_PARTITIONS,
            KEEP_FOREVER,
            require_partitions=False,
            **durability,
        ),
    ]


def topics_from_settings(settings: CommonSettings) -> list[TopicSpec]:
    """chancery_topics as the CHANCERY_* settings ask (topic names, count, durability)."""
    return chancery_topics(
        settings.topic,
        settings.dead_letter_topic,
        settings.partitions,
        replication_factor=settings.replication_factor,
        min_insync_replicas=settings.min_insync_replicas,
    )


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


async def _retrying(
    call: Callable[[], Awaitable[T]],
    deadline: float,
    transient: tuple[type[Exception], ...] = TRANSIENT,
) -> T:
    """`call()`, tried again while it fails for a reason of one broker (it asks any broker:
    on a cluster with a node down, the next try may ask another)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await call()
        except transient:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _describe(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, TopicState]:
    """Each of `names` that exists with a leader for every partition (configs left empty)."""
    found: dict[str, TopicState] = {}
    for topic in await admin.describe_topics(list(names)):
        if topic["error_code"] != 0:
            continue
        partitions: list[dict[str, Any]] = topic["partitions"]
        if partitions and all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions):
            found[topic["topic"]] = TopicState(
                name=topic["topic"],
                partitions=len(partitions),
                replication_factor=min(len(p["replicas"]) for p in partitions),
                configs={},
            )
    return found


async def _configs(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each topic's effective configs (its own, else the broker's defaults)."""
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


def _new_topic(spec: TopicSpec) -> NewTopic:
    configs = {**spec.configs, MIN_INSYNC_REPLICAS: str(spec.min_insync_replicas)}
    return NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=configs)


async def _states(
    admin: AIOKafkaAdminClient, names: Sequence[str], deadline: float
) -> dict[str, TopicState]:
    described = await _retrying(lambda: _describe(admin, names), deadline)
    if not described:
        return described
    # A topic just created may not have reached the broker asked for its configs yet.
    configs = await _retrying(
        lambda: _configs(admin, list(described)),
        deadline,
        (*TRANSIENT, UnknownTopicOrPartitionError),
    )
    return {
        name: TopicState(state.name, state.partitions, state.replication_factor, configs[name])
        for name, state in described.items()
    }


def _check(topics: Sequence[TopicSpec], states: Mapping[str, TopicState]) -> None:
    problems = [p for spec in topics for p in topic_problems(spec, states[spec.name])]
    if problems:
        raise TopicMismatchError("; ".join(problems))


async def check_topics(
    bootstrap_servers: str, topics: Sequence[TopicSpec], *, timeout_s: float = 30.0
) -> None:
    """Check that every topic exists (a leader for each partition) and meets its spec.

    Creates nothing. Raises TopicMismatchError naming what differs, or what is missing.
    """
    admin = await _started_admin(bootstrap_servers, timeout_s)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        states = await _states(admin, [spec.name for spec in topics], deadline)
        missing = [spec.name for spec in topics if spec.name not in states]
        if missing:
            msg = f"topics missing (or without a leader) on {bootstrap_servers}: {missing}"
            raise TopicMissingError(msg)
        _check(topics, states)
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap_servers: str, topics: Sequence[TopicSpec], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the missing topics and check all of them; return the names created.

    Waits until every partition has a leader, so a producer can use the topics at once.
    Raises TopicMismatchError when a topic exists but does not meet its spec.
    """
    admin = await _started_admin(bootstrap_servers, timeout_s)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        names = [spec.name for spec in topics]
        existing = await _retrying(lambda: _describe(admin, names), deadline)
        missing = [spec for spec in topics if spec.name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [_new_topic(spec) for spec in missing], timeout_ms=int(timeout_s * 1000)
            )
            for name, error_code, *rest in response.topic_errors:
                if error_code == 0:
                    created.append(name)
                elif error_code != TopicAlreadyExistsError.errno:  # lost a race: fine
                    raise for_code(error_code)(f"creating topic {name}: {rest}")
        # Creation is asynchronous in KRaft: wait for every partition to have a leader.
        while len(states := await _states(admin, names, deadline)) < len(names):
            if loop.time() > deadline:
                msg = f"topics without leaders after {timeout_s}s: {set(names) - set(states)}"
                raise TimeoutError(msg)
            await asyncio.sleep(0.1)
        _check(topics, states)
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
