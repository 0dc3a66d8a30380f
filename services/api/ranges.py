"""Lexicographic ranges over sorted-set members that begin with a `When.sort_key`.

Timelines and visits are Redis sorted sets with every score 0, ordered by member; each
member starts with the domain's sort key (fixed width), so a window of days and a page cursor
are both lexicographic bounds (ZRANGE ... BYLEX). The in-memory twin applies the same bounds
to its own lists with `in_range`.
"""

from __future__ import annotations

from datetime import date, timedelta

from chancery import keyspace
from chancery.contract import day_bound


def lex_bounds(
    start: date | None, end: date | None, after: str | None, descending: bool
) -> tuple[str, str]:
    """ZRANGE BYLEX bounds (low, high) for members that begin with a `When.sort_key`.

    `start`: members starting on or after that day; `end`: on or before it; `after`: the
    last member of the previous page, excluded (the page continues past it in the order).
    """
    lo = "[" + day_bound(start - timedelta(days=1)) if start is not None else "-"
    hi = "(" + day_bound(end) if end is not None else "+"
    if after is not None:
        if descending:
            hi = "(" + after if hi == "+" or after < hi[1:] else hi
        else:
            lo = "(" + after if lo == "-" or after >= lo[1:] else lo
    return lo, hi


def in_range(member: str, lo: str, hi: str) -> bool:
    """Whether `member` lies within ZRANGE BYLEX bounds `lo`..`hi`."""
    if lo != "-" and (member < lo[1:] or (lo[0] == "(" and member == lo[1:])):
        return False
    return not (hi != "+" and (member > hi[1:] or (hi[0] == "(" and member == hi[1:])))


def stored_bounds(
    start: date | None, end: date | None, after: str | None, descending: bool
) -> tuple[str, str]:
    """`lex_bounds` for the members the read models store (`keyspace.stored_timeline_member`),
    whose order prefix (`keyspace.order_code`) is the public member's order, in fewer bytes.

    `after` is a public member (what the API's cursors hold). Raises ValueError if it is not
    one (`keyspace.member_prefix`).
    """
    lo = "[" + keyspace.day_code(start - timedelta(days=1)) if start is not None else "-"
    hi = "(" + keyspace.day_code(end) if end is not None else "+"
    if after is not None:
        # Every stored member of the event `after` names is its prefix and a tail without
        # '~': past it, in ascending order, is past the prefix and '~'.
        prefix = keyspace.member_prefix(after)
        if descending:
            hi = "(" + prefix if hi == "+" or prefix < hi[1:] else hi
        else:
            past = prefix + "~"
            lo = "(" + past if lo == "-" or past >= lo[1:] else lo
    return lo, hi
