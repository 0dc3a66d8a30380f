"""Records from Kafka to the loop: a share of each round from every owned partition, decoded,
the undecodable parked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from chancery.contract import decode_event
from services.platform.kafka import ConsumedRecord

from .consumer import EventLogConsumer, Fetched
from .ownership import OwnedPartition, Ownership
from .poison import PoisonParking, reason_of
from .records import LogRecord

YIELD_EVERY = 200
"""Records decoded between two turns of the event loop (see `Fetcher._decode`)."""


@dataclass
class FetchedRecords:
    """One partition's records of a fetch, decoded, not yet applied."""

    owned: OwnedPartition
    generation: int  # the partition's generation when fetched (see OwnedPartition)
    last_offset: int  # of the last record fetched, decodable or not
    records: list[LogRecord]


class Fetcher:
    def __init__(
        self,
        consumer: EventLogConsumer,
        ownership: Ownership,
        parking: PoisonParking,
        *,
        max_batch: int,
        fetch_timeout_ms: int,
    ) -> None:
        self._consumer = consumer
        self._ownership = ownership
        self._parking = parking
        self._max_batch = max_batch
        self._fetch_timeout_ms = fetch_timeout_ms

    async def fetch(self, *, wait: bool = True) -> list[FetchedRecords]:
        """Each owned partition's share of up to `max_batch` records, decoded (`wait`: for up
        to the fetch timeout when the consumer holds none yet)."""
        return await self._decode_all(await self._take(wait=wait))

    async def _take(self, *, wait: bool) -> Fetched:
        """The consumer hands out one partition's buffer before the next, so a plain fetch is
        one partition's batch most of the time. A round of every partition's share lets
        Redis run one partition's script while the next partition's batch is folded."""
        owned = [o.tp for o in self._ownership if o.loaded]
        share = max(1, self._max_batch // max(1, len(owned)))
        fetched = await self._consumer.getmany(
            timeout_ms=self._fetch_timeout_ms if wait else 0, max_records=share
        )
        if fetched:
            for tp in owned:
                if tp not in fetched:
                    fetched.update(await self._consumer.getmany(tp, max_records=share))
        return fetched

    async def _decode_all(self, fetched: Fetched) -> list[FetchedRecords]:
        decoded = []
        for tp, raw in fetched.items():
            owned = self._ownership.get(tp.partition)
            if owned is None or not owned.loaded or owned.tp != tp or not raw:
                continue  # revoked, or fetched before it was sought to its stored offset
            records = await self._decode(tp, raw)
            decoded.append(FetchedRecords(owned, owned.generation, raw[-1].offset, records))
        return decoded

    async def _decode(self, tp: TopicPartition, raw: Sequence[ConsumedRecord]) -> list[LogRecord]:
        """The records decoded, the undecodable parked. Every `YIELD_EVERY` records the loop
        lets the event loop run: the scripts in flight are megabytes that the transport
        writes only then, and Redis can start a script only once it has all of it."""
        records: list[LogRecord] = []
        append = records.append
        p = tp.partition
        for start in range(0, len(raw), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            for r in raw[start : start + YIELD_EVERY]:
                value = r.value
                if value is None:
                    await self._parking.park(tp, r, "undecodable: a record without a value")
                    continue
                try:
                    event = decode_event(value)
                except ValueError as exc:  # ValidationError, and bytes that are not UTF-8
                    await self._parking.park(tp, r, f"undecodable: {reason_of(exc)}")
                    continue
                append(LogRecord(p, r.offset, r.key, value, event, event.key, r.headers or ()))
        return records
