"""A subscription's position while events are delivered out of order: the last offset
before which everything is done, never further."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.webhooks.positions import DeliveryPositions

pytestmark = pytest.mark.unit


def test_passed_over_events_move_the_position_when_nothing_is_open() -> None:
    positions = DeliveryPositions({0: 4})
    positions.passed(0, 5)
    positions.passed(1, 0)
    assert positions.take_changes() == {0: 5, 1: 0}
    assert positions.take_changes() == {}


def test_the_position_waits_for_the_oldest_open_event() -> None:
    positions = DeliveryPositions({})
    positions.opened(0, 0)
    positions.passed(0, 1)
    positions.opened(0, 2)
    positions.passed(0, 3)
    assert positions.take_changes() == {}
    positions.delivered(0, 2)
    assert positions.take_changes() == {}
    positions.delivered(0, 0)
    assert positions.take_changes() == {0: 3}
    assert positions.open == 0


@given(st.permutations(list(range(30))), st.sets(st.integers(0, 29)))
def test_any_order_of_completion_never_passes_an_open_event(
    order: list[int], skipped: set[int]
) -> None:
    positions = DeliveryPositions({})
    for offset in range(30):
        if offset in skipped:
            positions.passed(3, offset)
        else:
            positions.opened(3, offset)
    done: set[int] = set(skipped)
    for offset in (o for o in order if o not in skipped):
        positions.delivered(3, offset)
        done.add(offset)
        position = positions.current().get(3, -1)
        assert all(o in done for o in range(position + 1))  # everything up to it is done
        assert position + 1 not in done or position == 29  # and it is as far as it can be
    assert positions.current()[3] == 29
