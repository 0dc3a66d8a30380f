"""The order of events: total, deterministic, independent of arrival.

Events order by when they occurred (`When.sort_key`: start, precision rank, end), then by
`source`, then by `id`. Identity breaks every tie, so any two distinct events compare the
same way wherever and whenever they are sorted. A retraction has no `occurred`; it sorts at
the time it was reported.
"""

from __future__ import annotations

from collections.abc import Iterable

from chancery.contract import Event, When

OrderKey = tuple[str, str, str]


def occurred_of(event: Event) -> When:
    """When the event occurred; for a retraction, when it was reported."""
    return event.data.when or When.from_datetime(event.time)


def order_key(event: Event) -> OrderKey:
    return occurred_of(event).sort_key(), event.source, event.id


def order_string(event: Event) -> str:
    """`order_key` as one string with the same lexicographic order.

    `When.sort_key` has a fixed width, and neither `source` nor `id` may contain a space, so
    joining with spaces preserves the tuple's order (a Redis sorted set can use it with
    ZRANGEBYLEX).
    """
    return " ".join(order_key(event))


def in_order(events: Iterable[Event]) -> list[Event]:
    return sorted(events, key=order_key)
