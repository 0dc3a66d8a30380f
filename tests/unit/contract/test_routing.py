"""Partition keys: the subject whose order matters."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from chancery.contract import parse_incoming, partition_for, partition_key, party_key
from chancery.contract.routing import murmur2

from .examples import example_event

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("actor1", "actor2", "key"),
    [
        ("USA", "CHN", "CHN|USA"),
        ("CHN", "USA", "CHN|USA"),
        ("IRN", "IRN", "IRN"),
        ("EU", "NATO", "EU|NATO"),
    ],
)
def test_a_coded_event_goes_under_the_party_key_of_its_two_actors(
    actor1: str, actor2: str, key: str
) -> None:
    event = example_event("diplomacy.event.coded")
    data = {
        **event.data.model_dump(mode="json", exclude_none=True),
        "actor1": actor1,
        "actor2": actor2,
    }
    coded = parse_incoming({**event.model_dump(mode="json", exclude_none=True), "data": data})
    assert partition_key(coded) == key == party_key((actor1, actor2))


# murmur2 and the partition of each key, as Java's client computes them: printed by
# org.apache.kafka.common.utils.Utils (kafka-clients 4.1.1) for these UTF-8 keys. A key's
# partition must never change for a given count, whatever the client or its version.
JAVA_PARTITIONER = [
    ("CHN|USA", 3934930736, 0, 0),
    ("li-hui", 258185138, 2, 2),
    ("RUS|UKR", 2032236653, 5, 5),
    ("", 275646681, 3, 9),
    ("proposal-42", 2634088984, 2, 8),
    ("ÇÑ", 1254620813, 5, 5),
    ("USA", 2812223224, 2, 8),
    ("a", 2731586172, 4, 4),
    ("ab", 316155434, 2, 2),
    ("abc", 479470107, 3, 3),
    ("abcd", 2971317748, 2, 20),
    ("abcde", 461995741, 1, 13),
]


@pytest.mark.parametrize(("key", "hashed", "of_6", "of_24"), JAVA_PARTITIONER)
def test_a_key_goes_to_the_partition_javas_client_picks(
    key: str, hashed: int, of_6: int, of_24: int
) -> None:
    assert murmur2(key.encode()) == hashed
    assert partition_for(key.encode(), 6) == of_6
    assert partition_for(key.encode(), 24) == of_24
    assert partition_for(key.encode(), 1) == 0


@settings(max_examples=300)
@given(key=st.binary(max_size=64), partitions=st.integers(min_value=1, max_value=64))
def test_a_key_goes_to_the_partition_aiokafka_picks(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, every, every)


def test_a_topic_without_partitions_has_no_partition_for_a_key() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"CHN|USA", 0)
