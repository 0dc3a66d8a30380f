"""Read-model layout 2 (chancery/keyspace.py): its members keep the domain's order in fewer
bytes, its codecs give back what they were given, and its bounds select what the public
members' bounds select."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chancery import keyspace
from chancery.contract import EVENT_TYPES, Event, When, day_bound, encode_event
from chancery.domain import ContactEntry
from services.api.ranges import in_range, lex_bounds, stored_bounds
from tests.unit.contract.strategies import histories, when_texts

pytestmark = pytest.mark.unit

SOURCES = st.sampled_from(
    [
        *keyspace.SOURCES,
        "https://a.example/feed",
        "https://www.gdeltproject.org/x",
        "https://doi.org/",
        "urn:chancery:z",
    ]
)
IDS = st.from_regex(r"[ab19][ab19.:@~-]{0,4}", fullmatch=True)  # as the contract allows
IDENTITIES = st.tuples(st.builds(When, when_texts()), SOURCES, IDS)


@settings(max_examples=300, deadline=None)
@given(IDENTITIES, IDENTITIES)
def test_order_codes_order_as_the_domain_orders(
    a: tuple[When, str, str], b: tuple[When, str, str]
) -> None:
    public_a = (a[0].sort_key(), a[1], a[2])
    public_b = (b[0].sort_key(), b[1], b[2])
    code_a, code_b = keyspace.order_code(*a), keyspace.order_code(*b)
    assert (public_a < public_b) == (code_a < code_b)
    assert (public_a == public_b) == (code_a == code_b)


@settings(max_examples=200, deadline=None)
@given(IDENTITIES, st.sampled_from(sorted(EVENT_TYPES)), st.integers(0, 10**12))
def test_a_timeline_member_names_its_place_and_type_and_its_public_form_its_order(
    identity: tuple[When, str, str], event_type: str, place: int
) -> None:
    when, source, event_id = identity
    order = keyspace.order_code(when, source, event_id)
    member = keyspace.stored_timeline_member(order, event_type, place)
    assert keyspace.timeline_place(member) == place
    assert keyspace.timeline_type_code(member) == keyspace.TYPE_CODES[event_type]
    public = keyspace.timeline_member(f"{when.sort_key()} {source} {event_id}", event_type)
    assert keyspace.member_prefix(public) == order


@settings(max_examples=200, deadline=None)
@given(IDENTITIES, st.sampled_from(["meeting", "phone", "video", "visit"]))
def test_a_contact_member_gives_back_its_entry(identity: tuple[When, str, str], kind: str) -> None:
    when, source, event_id = identity
    entry = ContactEntry.model_validate(
        {"when": when, "event": {"source": source, "id": event_id}, "kind": kind}
    )
    key, back = keyspace.decode_contact(keyspace.contact_member(entry).encode())
    assert back == entry
    assert str(back.when) == str(when)
    assert key == entry.event.key


@settings(max_examples=100, deadline=None)
@given(st.dates(date(1000, 1, 2), date(9998, 12, 30)), st.builds(When, when_texts()))
def test_day_codes_bound_as_day_bounds_do(day: date, when: When) -> None:
    assert (when.sort_key() < day_bound(day)) == (keyspace.sort_code(when) < keyspace.day_code(day))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(IDENTITIES, min_size=1, max_size=12, unique_by=lambda i: (i[1], i[2])),
    st.data(),
)
def test_stored_bounds_select_what_the_public_bounds_select(
    identities: list[tuple[When, str, str]], data: st.DataObject
) -> None:
    start = data.draw(st.none() | st.dates(date(2020, 1, 1), date(2024, 12, 31)))
    end = data.draw(st.none() | st.dates(date(2020, 1, 1), date(2024, 12, 31)))
    descending = data.draw(st.booleans())
    public = {
        keyspace.timeline_member(f"{w.sort_key()} {s} {i}", "diplomacy.meeting.held"): (
            keyspace.stored_timeline_member(
                keyspace.order_code(w, s, i), "diplomacy.meeting.held", n
            )
        )
        for n, (w, s, i) in enumerate(identities)
    }
    after = data.draw(st.none() | st.sampled_from(sorted(public)))
    lo, hi = lex_bounds(start, end, after, descending)
    slo, shi = stored_bounds(start, end, after, descending)
    chosen = {m for m in public if in_range(m, lo, hi)}
    assert {public[m] for m in chosen} == {s for s in public.values() if in_range(s, slo, shi)}


@settings(max_examples=50, deadline=None)
@given(histories(max_size=6), st.integers(0, 10**9))
def test_a_stored_event_gives_back_its_bytes_and_offset(events: list[Event], offset: int) -> None:
    for event in events:
        raw = encode_event(event)
        assert keyspace.decode_stored_event(keyspace.encode_stored_event(raw), 5) == (5, raw)
        moved = keyspace.encode_stored_event(raw, offset)
        assert keyspace.decode_stored_event(moved, 5) == (offset, raw)


@settings(max_examples=50, deadline=None)
@given(histories(max_size=6))
def test_events_stored_together_are_stored_as_each_alone(events: list[Event]) -> None:
    raws = [encode_event(event) for event in events]
    assert keyspace.encode_stored_events(raws) == [keyspace.encode_stored_event(r) for r in raws]


def _base64_place(place: int) -> str:
    digits = ""
    while True:
        place, digit = divmod(place, 64)
        digits = keyspace._DIGITS[digit] + digits
        if not place:
            return digits


@settings(max_examples=500, deadline=None)
@given(
    st.integers(0, 2**70) | st.sampled_from([64**k + d for k in range(1, 12) for d in (-1, 0, 1)])
)
def test_a_place_code_is_the_place_in_base_64_without_leading_zeros(place: int) -> None:
    assert keyspace.place_code(place) == _base64_place(place)
    assert keyspace.timeline_place(f"order x{keyspace.place_code(place)}") == place


def test_place_codes_of_small_places() -> None:
    assert [keyspace.place_code(p) for p in (0, 1, 63, 64, 4095, 4096)] == [
        "-",
        "0",
        "z",
        "0-",
        "zz",
        "0--",
    ]
    with pytest.raises(ValueError, match="zero or more"):
        keyspace.place_code(-1)


def test_every_event_type_has_a_code() -> None:
    assert set(keyspace.TYPE_CODES) == set(EVENT_TYPES)
    assert len(set(keyspace.TYPE_CODES.values())) == len(EVENT_TYPES)
    assert list(keyspace.SOURCES) == sorted(keyspace.SOURCES)


def test_a_string_that_is_no_timeline_member_is_refused_as_a_bound() -> None:
    with pytest.raises(ValueError, match="not a timeline member"):
        stored_bounds(None, None, "not a member", False)
