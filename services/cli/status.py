"""`chancery status`: the health of each part, and positions and lag per partition.

Every part is asked at once, each with a short timeout, so a dead part costs seconds, not
minutes, and never hides the others:
- ingest and API: `GET /readyz` (200 ready; 503 with what is missing);
- projector: `GET /status` (its version, mode, and the lag of the partitions it holds);
- Kafka: the log end offset of each partition of the topic, and the dead-letter count;
- Redis: the read-model version served and the offset each partition has applied;
- the webhook worker: `GET /status` (the subscriptions it delivers), and each webhook
  subscription from Redis (state, events behind the log's end, last error).

The per-partition table comes from Kafka and Redis directly, so it covers every partition
whichever projector instance holds it, and still shows when the projector is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from chancery import keyspace
from chancery.keyspace import PartitionSpace
from services.platform.redis import REDIS_FAILED, redis_client
from services.webhooks.store import RedisSubscriptionStore, SubscriptionRecord

from .errors import ServiceDown, failure_reason, problem_detail, transport_reason

TIMEOUT_S = 5.0
REDIS_OR_VALUE: tuple[type[Exception], ...] = (*REDIS_FAILED, ValueError)


@dataclass
class Check:
    part: str
    target: str
    ok: bool
    detail: str


@dataclass
class PartitionRow:
    partition: int
    log_end: int | None  # Kafka's next offset
    applied: int | None  # last offset applied to the served read models
    lag: int | None


@dataclass
class SubscriptionRow:
    id: str
    state: str
    lag: int | None  # events in the log after its position (None: Kafka not reached)
    last_error: str | None
    url: str


@dataclass
class StatusReport:
    topic: str
    checks: list[Check] = field(default_factory=list)
    partitions: list[PartitionRow] = field(default_factory=list)
    version: int | None = None
    subscriptions: list[SubscriptionRow] = field(default_factory=list)

    @property
    def down(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def total_lag(self) -> int | None:
        lags = [row.lag for row in self.partitions]
        return (
            None
            if not lags or any(lag is None for lag in lags)
            else sum(lag for lag in lags if lag is not None)
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_lag": self.total_lag}


@dataclass
class _KafkaStatus:
    """What Kafka told: its check, and each partition's log end."""

    check: Check
    ends: dict[int, int] = field(default_factory=dict)


@dataclass
class _RedisStatus:
    """What Redis told: its check, the served version, and each partition's applied offset."""

    check: Check
    version: int | None = None
    applied: dict[int, int | None] = field(default_factory=dict)


async def _http(part: str, client: httpx.AsyncClient, url: str) -> tuple[Check, Any]:
    try:
        response = await client.get(url)
    except httpx.TransportError as exc:
        return Check(part, url, False, transport_reason(exc)), None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        detail = _http_detail(body) if isinstance(body, dict) else problem_detail(response)
        return Check(part, url, False, f"{response.status_code}: {detail}"), body
    return Check(part, url, True, _http_detail(body)), body


def _http_detail(body: Any) -> str:
    if not isinstance(body, dict):
        return "ok"
    checks = body.get("checks")
    if isinstance(checks, dict):
        return "; ".join(
            f"{name} {'ok' if isinstance(c, dict) and c.get('ok') else 'DOWN'}"
            + (f" ({c['detail']})" if isinstance(c, dict) and c.get("detail") else "")
            for name, c in checks.items()
        )
    if "worker" in body:
        held = body.get("subscriptions")
        return f"delivering {len(held) if isinstance(held, list) else '?'} subscription(s)"
    if "version" in body:
        partitions = body.get("partitions")
        held = len(partitions) if isinstance(partitions, list) else "?"
        lag = (
            sum(int(p.get("lag") or 0) for p in partitions if isinstance(p, dict))
            if isinstance(partitions, list)
            else "?"
        )
        ready = "ready" if body.get("ready") else "catching up"
        return (
            f"version {body.get('version')}, {body.get('mode', '?')}, {ready}; "
            f"holds {held} partition(s), lag {lag}"
        )
    return str(body.get("status", "ok"))


async def _quietly(closing: Awaitable[object]) -> None:
    """Close a client that may never have connected, without waiting long or failing."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await closing
    except Exception:  # noqa: BLE001, S110 - nothing to do about a failed close
        pass


def _kafka_reason(exc: Exception) -> str:
    reason = failure_reason(exc)
    if "bootstrap" in str(exc).lower():
        return "cannot connect (no broker answers)"
    return reason


async def _kafka(bootstrap: str, topic: str, dead_letter_topic: str | None) -> _KafkaStatus:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="chancery-status",
        request_timeout_ms=int(TIMEOUT_S * 1000),
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="chancery-status",
        enable_auto_commit=False,
        request_timeout_ms=int(TIMEOUT_S * 1000),
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await admin.start()
            counts = {
                described["topic"]: len(described["partitions"])
                for described in await admin.describe_topics(
                    [topic, dead_letter_topic] if dead_letter_topic else [topic]
                )
                if described["error_code"] == 0
            }
            if topic not in counts:
                return _KafkaStatus(Check("Kafka", bootstrap, False, f"no topic {topic!r}"))
            await consumer.start()
            parts = [TopicPartition(topic, p) for p in range(counts[topic])]
            ends = await consumer.end_offsets(parts)
            letters = "no dead-letter topic"
            if dead_letter_topic is not None and dead_letter_topic in counts:
                dlq = [
                    TopicPartition(dead_letter_topic, p) for p in range(counts[dead_letter_topic])
                ]
                dlq_ends = await consumer.end_offsets(dlq)
                dlq_starts = await consumer.beginning_offsets(dlq)
                count = sum(dlq_ends[tp] - dlq_starts[tp] for tp in dlq)
                letters = f"{count} dead letter(s) in {dead_letter_topic}"
    except TimeoutError:
        return _KafkaStatus(Check("Kafka", bootstrap, False, f"no answer within {TIMEOUT_S:g} s"))
    except Exception as exc:  # noqa: BLE001 - any client failure means "down", said once
        return _KafkaStatus(Check("Kafka", bootstrap, False, _kafka_reason(exc)))
    finally:
        await _quietly(consumer.stop())
        await _quietly(admin.close())
    total = sum(ends.values())
    detail = f"topic {topic}: {len(parts)} partitions, {total:,} events; {letters}"
    return _KafkaStatus(
        Check("Kafka", bootstrap, True, detail), {tp.partition: ends[tp] for tp in parts}
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _redis(url: str, cluster: bool) -> _RedisStatus:
    client = redis_client(
        url,
        cluster=cluster,
        client_name="status",
        socket_timeout=TIMEOUT_S,
        connect_timeout_s=TIMEOUT_S,
    )
    shown = url.rsplit("@", maxsplit=1)[-1]  # never print a password
    try:
        await client.ping()
        raw = await client.get(keyspace.ACTIVE_VERSION)
        if raw is None:
            return _RedisStatus(Check("Redis", shown, True, "reachable; no read models yet"))
        version = int(raw)
        meta = await client.hgetall(keyspace.version_meta(version))
        partitions = int(meta.get(keyspace.MetaField.PARTITIONS.encode(), b"0"))
        state = _text(meta.get(keyspace.MetaField.STATE.encode(), b"?"))
        async with client.pipeline(transaction=False) as pipe:
            for p in range(partitions):
                pipe.get(PartitionSpace(version, p).offset)
            offsets = await pipe.execute()
    except REDIS_OR_VALUE as exc:
        return _RedisStatus(Check("Redis", shown, False, failure_reason(exc)))
    finally:
        await client.aclose()
    applied = {p: int(o) if o is not None else None for p, o in enumerate(offsets)}
    return _RedisStatus(
        Check("Redis", shown, True, f"serving read-model version {version} ({state})"),
        version,
        applied,
    )


async def _subscriptions(url: str, cluster: bool) -> list[SubscriptionRecord]:
    """Every webhook subscription (none when Redis cannot be read: its check says why)."""
    client = redis_client(
        url,
        cluster=cluster,
        client_name="status",
        socket_timeout=TIMEOUT_S,
        connect_timeout_s=TIMEOUT_S,
    )
    try:
        return await RedisSubscriptionStore(client).every()
    except REDIS_FAILED:
        return []
    except ValueError:  # a record this version cannot read
        return []
    finally:
        await client.aclose()


async def _nothing() -> tuple[Check | None, Any]:
    return None, None


async def gather(
    *,
    ingest_url: str,
    api_url: str,
    projector_url: str,
    deliver_url: str | None = None,
    kafka_bootstrap: str,
    redis_url: str,
    topic: str,
    dead_letter_topic: str,
    redis_cluster: bool = False,
) -> StatusReport:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its retries are not news here
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        hooks = asyncio.create_task(_subscriptions(redis_url, redis_cluster))
        worker = asyncio.create_task(
            _http("deliver", client, f"{deliver_url}/status") if deliver_url else _nothing()
        )
        (ingest, _), (api, _), (projector, _), kafka, redis = await asyncio.gather(
            _http("ingest", client, f"{ingest_url}/readyz"),
            _http("API", client, f"{api_url}/readyz"),
            _http("projector", client, f"{projector_url}/status"),
            _kafka(kafka_bootstrap, topic, dead_letter_topic),
            _redis(redis_url, redis_cluster),
        )
        deliver, _ = await worker
    checks = [ingest, api, projector, *([deliver] if deliver else []), kafka.check, redis.check]
    report = StatusReport(topic=topic, checks=checks)
    for record in await hooks:
        behind = None
        if kafka.ends:
            behind = sum(
                max(0, end - (record.position.get(p, -1) + 1)) for p, end in kafka.ends.items()
            )
        report.subscriptions.append(
            SubscriptionRow(
                record.subscription.id,
                record.status.state.value,
                behind,
                record.status.last_error,
                record.subscription.url,
            )
        )
    report.version = redis.version
    for p in sorted(set(kafka.ends) | set(redis.applied)):
        end = kafka.ends.get(p)
        applied = redis.applied.get(p)
        lag = None if end is None else end - (applied + 1 if applied is not None else 0)
        report.partitions.append(PartitionRow(p, end, applied, lag))
    return report


async def reachable(
    kafka_bootstrap: str, redis_url: str, topic: str, *, redis_cluster: bool = False
) -> None:
    """Raise `ServiceDown` for the first of Kafka (with its topic) and Redis that is down."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    kafka, redis = await asyncio.gather(
        _kafka(kafka_bootstrap, topic, f"{topic}.dlq"), _redis(redis_url, redis_cluster)
    )
    for check in (kafka.check, redis.check):
        if not check.ok:
            raise ServiceDown(check.part, check.target, check.detail)


async def reachable_kafka(kafka_bootstrap: str, topic: str) -> None:
    """Raise `ServiceDown` unless Kafka answers and has `topic`."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    kafka = await _kafka(kafka_bootstrap, topic, None)
    if not kafka.check.ok:
        raise ServiceDown(kafka.check.part, kafka.check.target, kafka.check.detail)
