"""Partition keys: the subject whose order matters."""

from __future__ import annotations

import pytest

from chancery.contract import parse_incoming, partition_key, party_key

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
