"""Replaying parked (dead-lettered) events once the cause is fixed: `chancery dlq replay`.

The projector parks a poison event in the dead-letter topic with its bytes, key and headers
unchanged, plus headers saying why (`chancery-reason`) and where it came from
(`chancery-origin-topic`, `-partition`, `-offset`). Replaying publishes the same bytes again
to the event topic, into the partition it came from (so a retraction stays beside its
target), with a `chancery-replayed-from` header. The projector then applies it as any new
record; an identity it had in fact applied already is dropped, so replaying twice is
harmless. A record that is still poison is parked again.

Which records: those not yet replayed by the consumer group `group_id` (its committed
offsets on the dead-letter topic move past every record read, replayed or not), or all of
them with `from_beginning`; `select` narrows that down (by reason, by origin offset, ...).
Only records whose origin is the configured event topic are replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from chancery.settings import CommonSettings
from services.platform.kafka import ConsumedRecord, event_log_producer
from services.projector.deadletters import (
    ORIGIN_OFFSET,
    ORIGIN_PARTITION,
    ORIGIN_TOPIC,
    PARKED_HEADERS,
    REASON,
)

logger = logging.getLogger(__name__)

REPLAYED_FROM = "chancery-replayed-from"
DEFAULT_GROUP = "chancery-dlq-replay"


@dataclass(frozen=True)
class ParkedEvent:
    """One record of the dead-letter topic, as the projector parked it."""

    dlq_partition: int
    dlq_offset: int
    origin_topic: str | None
    origin_partition: int | None
    origin_offset: int | None
    reason: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass
class ReplayReport:
    replayed: list[ParkedEvent] = field(default_factory=list)
    skipped: list[ParkedEvent] = field(default_factory=list)  # not selected, or another topic
    read_up_to: dict[int, int] = field(default_factory=dict)  # dlq partition -> next offset


async def replay_dead_letters(
    settings: CommonSettings,
    *,
    select: Callable[[ParkedEvent], bool] | None = None,
    group_id: str = DEFAULT_GROUP,
    from_beginning: bool = False,
    dry_run: bool = False,
    timeout_s: float = 60.0,
) -> ReplayReport:
    """Republish parked events to `settings.topic`; returns what was replayed and skipped.

    Reads the dead-letter topic up to its end as of the call. With `dry_run`, publishes
    nothing and commits nothing (a listing). Raises TimeoutError after `timeout_s`.
    """
    async with asyncio.timeout(timeout_s):
        return await _replay(settings, select, group_id, from_beginning, dry_run)


async def _replay(
    settings: CommonSettings,
    select: Callable[[ParkedEvent], bool] | None,
    group_id: str,
    from_beginning: bool,
    dry_run: bool,
) -> ReplayReport:
    report = ReplayReport()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="chancery-dlq-replay",
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    producer = event_log_producer(settings.kafka_bootstrap_servers, client_id="dlq-replay")
    await producer.start()
    try:
        partitions = sorted(consumer.partitions_for_topic(settings.dead_letter_topic) or [])
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = sorted(consumer.partitions_for_topic(settings.dead_letter_topic) or [])
        tps = [TopicPartition(settings.dead_letter_topic, p) for p in partitions]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        ends = {tp: int(o) for tp, o in (await consumer.end_offsets(tps)).items()}
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        sends = []
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    parked = _parked(tp.partition, record)
                    if parked.origin_topic != settings.topic or (
                        select is not None and not select(parked)
                    ):
                        report.skipped.append(parked)
                        continue
                    report.replayed.append(parked)
                    if not dry_run:
                        sends.append(await _send(producer, settings.topic, parked))
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        await asyncio.gather(*sends)
        report.read_up_to = {tp.partition: ends[tp] for tp in tps}
        if not dry_run and tps:
            await consumer.commit({tp: ends[tp] for tp in tps})
    finally:
        await producer.stop()
        await consumer.stop()
    logger.info(
        "dead letters: %d replayed, %d skipped%s",
        len(report.replayed),
        len(report.skipped),
        " (dry run)" if dry_run else "",
    )
    return report


def _parked(dlq_partition: int, record: ConsumedRecord) -> ParkedEvent:
    headers = tuple((k, bytes(v)) for k, v in (record.headers or ()))
    named = dict(headers)

    def number(name: str) -> int | None:
        raw = named.get(name)
        return int(raw) if raw is not None and raw.isdigit() else None

    origin = named.get(ORIGIN_TOPIC)
    return ParkedEvent(
        dlq_partition=dlq_partition,
        dlq_offset=record.offset,
        origin_topic=origin.decode() if origin is not None else None,
        origin_partition=number(ORIGIN_PARTITION),
        origin_offset=number(ORIGIN_OFFSET),
        reason=named.get(REASON, b"").decode(errors="replace"),
        key=record.key,
        value=record.value,
        headers=headers,
    )


async def _send(
    producer: AIOKafkaProducer, topic: str, parked: ParkedEvent
) -> asyncio.Future[object]:
    headers = [(k, v) for k, v in parked.headers if k not in PARKED_HEADERS]
    headers.append(
        (REPLAYED_FROM, f"{parked.dlq_partition}@{parked.dlq_offset}".encode()),
    )
    future: asyncio.Future[object] = await producer.send(
        topic,
        value=parked.value,
        key=parked.key,
        partition=parked.origin_partition,
        headers=headers,
    )
    return future
