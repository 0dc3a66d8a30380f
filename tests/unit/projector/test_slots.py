"""On a Redis Cluster a script may touch one hash slot only: every key of one partition's
atomic step (the apply script's KEYS), and of the API's relation script, is in the slot of
the partition's hash tag `{pN}`, whatever the events."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from chancery.contract import Event, encode_event
from chancery.keyspace import PartitionSpace
from services.api.redis_reader.relation_scripts import relation_keys
from services.projector.plan import WritePlan
from services.projector.projection import ReadModelProjection
from services.projector.records import LogRecord
from services.projector.store import Batch, step_keys
from tests.twins.read_model_writer import MemoryReadModels
from tests.unit.contract.strategies import OCCURRING_TYPES, SOURCES, occurring_events, retraction

pytestmark = pytest.mark.unit


def slot_of_partition(partition: int) -> int:
    return key_slot(f"{{p{partition}}}".encode())


@st.composite
def batches(draw: st.DrawFn) -> list[Event]:
    """Events of every type, with duplicates and retractions (so trips, people, retraction
    and index keys all appear)."""
    events: list[Event] = []
    for i in range(draw(st.integers(1, 25))):
        if events and draw(st.integers(0, 5)) == 0:
            target = draw(st.sampled_from(events))
            events.append(retraction(f"r{i}", draw(st.sampled_from(SOURCES)), target, target.time))
        else:
            events.append(draw(occurring_events(f"e{i}", draw(st.sampled_from(OCCURRING_TYPES)))))
    return events


@settings(max_examples=60, deadline=None)
@given(events=batches(), partition=st.integers(0, 63), version=st.integers(1, 40))
async def test_every_key_of_a_partitions_step_is_in_its_slot(
    events: list[Event], partition: int, version: int
) -> None:
    space = PartitionSpace(version, partition)
    records = [
        LogRecord(partition, offset, None, encode_event(event), event, event.key)
        for offset, event in enumerate(events)
    ]
    [plan] = await ReadModelProjection(MemoryReadModels()).plan([(space, records)])
    assert isinstance(plan, WritePlan), plan

    keys = step_keys(Batch(space, None, len(events) - 1, len(events), plan))

    assert len(keys) > 3  # the offset, progress and stream, and what the events wrote
    assert {key_slot(k.encode()) for k in keys} == {slot_of_partition(partition)}


def test_the_relation_scripts_keys_are_each_in_their_partitions_slot() -> None:
    for partition, keys in enumerate(relation_keys(3, 12, "CHN|USA")):
        assert {key_slot(k.encode()) for k in keys} == {slot_of_partition(partition)}


def test_the_partitions_of_a_topic_spread_over_slots() -> None:
    # Each partition its own slot: a cluster spreads them over its masters.
    assert len({slot_of_partition(p) for p in range(64)}) == 64
