"""Kafka clients with the settings an event log needs (aiokafka's defaults are not those).

The producer is idempotent (which implies acks=all), so a retried send never duplicates or
reorders within a partition. Consumers never auto-commit: the projector keeps its offsets
in Redis, in the same atomic write as the read models.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from chancery.contract import partition_for

CLIENT_ID_PREFIX = "chancery"
# JSON events shrink several times over: the broker writes, keeps and serves that much less,
# and a producer spends less on its socket writes than zstd costs it.
LOG_COMPRESSION = "zstd"


@lru_cache(maxsize=65_536)
def key_partition(key: bytes, partitions: int) -> int:
    """`chancery.contract.partition_for`, remembered: a producer sends many records of few
    keys (a pair, a person), and the hash is Python."""
    return partition_for(key, partitions)


def by_contract(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """The producer's partitioner: a keyed record goes where the contract says
    (`partition_for`, Kafka's own default partitioner), whatever the client."""
    if key is None:  # every Chancery record has a key; this is aiokafka's rule for none
        return random.choice(list(available or all_partitions))  # noqa: S311 - not a secret
    return all_partitions[key_partition(key, len(all_partitions))]


def event_log_producer(
    bootstrap_servers: str,
    *,
    client_id: str,
    linger_ms: int = 2,
    request_timeout_ms: int = 10_000,
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=f"{CLIENT_ID_PREFIX}-{client_id}",
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        compression_type=LOG_COMPRESSION,
        max_batch_size=256 * 1024,
        request_timeout_ms=request_timeout_ms,
        retry_backoff_ms=100,
        metadata_max_age_ms=30_000,
        partitioner=by_contract,
    )


def event_log_consumer(
    bootstrap_servers: str,
    *,
    client_id: str,
    group_id: str | None,
    max_poll_records: int | None = None,
) -> AIOKafkaConsumer:
    """A consumer that starts from the beginning and never commits on its own."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id=f"{CLIENT_ID_PREFIX}-{client_id}",
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=max_poll_records,
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        metadata_max_age_ms=30_000,
    )


class ConsumedRecord(Protocol):
    """The fields we read of a record aiokafka's consumer returns (aiokafka ships no types:
    this gives its `ConsumerRecord` one where it enters our code)."""

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...
