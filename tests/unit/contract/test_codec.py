"""The envelope, identity, the codec and routing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from chancery.contract import (
    DEAD_LETTER_TOPIC,
    DEFAULT_PARTITIONS,
    EVENT_TYPES,
    EVENTS_TOPIC,
    Event,
    MeetingHeld,
    content_digest,
    decode_event,
    digest_of,
    encode_event,
    encode_unstamped,
    event_key,
    parse_incoming,
    parse_incoming_batch_json,
    parse_incoming_json,
    partition_key,
    recorded_json,
    retraction_target,
    stamp,
    stamp_encoded,
)

from .examples import SOURCE, example_dict, example_event
from .strategies import histories

pytestmark = pytest.mark.unit

RECORDED = datetime(2023, 5, 27, 9, 0, tzinfo=UTC)


def test_every_type_parses_from_a_client_dict_into_its_own_class() -> None:
    for type_name, cls in EVENT_TYPES.items():
        event = example_event(type_name)
        assert type(event) is cls
        assert event.type == type_name
        assert event.specversion == "1.0"
        assert event.datacontenttype == "application/json"


def test_event_types_are_the_catalogues_and_all_start_with_diplomacy() -> None:
    assert len(EVENT_TYPES) == 18
    assert all(name.startswith("diplomacy.") for name in EVENT_TYPES)
    for name, cls in EVENT_TYPES.items():  # the class is named after its type: VisitLegStarted
        words = name.removeprefix("diplomacy.").split(".")
        assert cls.__name__ == "".join(word.capitalize() for word in words)


def test_events_are_frozen() -> None:
    event = example_event("diplomacy.meeting.held")
    assert isinstance(event, MeetingHeld)
    with pytest.raises(ValidationError):
        event.id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        event.data.parties = ("RUS", "UKR")  # type: ignore[misc]


def test_identity_is_the_source_and_id_pair_digested() -> None:
    event = example_event("diplomacy.meeting.held")
    assert event.key == event_key(SOURCE, "diplomacy.meeting.held")
    assert event_key("urn:a", "1") == "10d39f559d11cd084bb30159c5e9b68e"
    assert event_key("urn:a", "1") != event_key("urn:a1", "")
    assert len(event_key(SOURCE, "x" * 128)) == 32


def test_a_client_may_not_set_the_service_extensions_and_is_told_which() -> None:
    raw = example_dict("diplomacy.meeting.held")
    raw |= {"recordedtime": "2023-05-12T09:00:00Z", "partitionkey": "CHN|USA"}
    raw["data"]["parties"] = ["CHN", "ZZZ"]
    with pytest.raises(ValidationError) as caught:
        parse_incoming(raw)
    locs = [error["loc"] for error in caught.value.errors()]
    assert ("recordedtime",) in locs
    assert ("partitionkey",) in locs
    assert ("data", "parties", 1) in locs  # the other problems are reported too


def test_an_unknown_type_is_an_error_on_type() -> None:
    for tag in ("diplomacy.summit.held", None, 42):
        raw = example_dict("diplomacy.meeting.held") | {"type": tag}
        with pytest.raises(ValidationError) as caught:
            parse_incoming(raw)
        assert [e["loc"] for e in caught.value.errors()] == [("type",)]
        assert caught.value.errors()[0]["type"] == "unknown_type"


def test_parse_incoming_wants_an_object() -> None:
    with pytest.raises(ValidationError):
        parse_incoming([example_dict("diplomacy.meeting.held")])


def test_the_log_decoder_accepts_the_extensions() -> None:
    event = stamp(
        example_event("diplomacy.meeting.held"), recorded_at=RECORDED, partition_key="CHN|USA"
    )
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert decoded.recordedtime == RECORDED
    assert decoded.partitionkey == "CHN|USA"
    assert decode_event(encode_event(event).decode()) == event


def test_the_log_decoder_refuses_what_is_not_an_event() -> None:
    for raw in (b"", b"{}", b"[]", b"not json", b'{"type":"diplomacy.meeting.held"}'):
        with pytest.raises(ValidationError):
            decode_event(raw)


def test_stamp_sets_recordedtime_in_utc_and_the_partition_key() -> None:
    event = example_event("diplomacy.meeting.held")
    recorded = datetime(2023, 5, 27, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    stamped = stamp(event, recorded_at=recorded, partition_key="CHN|USA")
    assert isinstance(stamped, MeetingHeld)
    assert stamped.recordedtime == recorded
    assert stamped.recordedtime is not None
    assert stamped.recordedtime.utcoffset() == timedelta(0)
    assert b'"recordedtime":"2023-05-27T09:00:00Z"' in encode_event(stamped)
    assert event.recordedtime is None  # a copy
    with pytest.raises(ValueError, match="aware"):
        stamp(event, recorded_at=datetime(2023, 5, 27), partition_key="CHN|USA")
    with pytest.raises(ValueError, match="partition key"):
        stamp(event, recorded_at=RECORDED, partition_key="CHN USA")


def test_recordedtime_in_the_log_is_utc() -> None:
    raw = json.loads(encode_event(example_event("diplomacy.meeting.held")))
    raw["recordedtime"] = "2023-05-27T11:00:00+02:00"
    with pytest.raises(ValidationError) as caught:
        decode_event(json.dumps(raw))
    assert caught.value.errors()[0]["loc"][-1] == "recordedtime"


def test_encoding_is_canonical_compact_and_leaves_out_absent_values() -> None:
    event = example_event("diplomacy.relations.changed")
    raw = encode_event(event)
    assert raw.startswith(b'{"specversion":"1.0","id":')
    assert b" " not in raw.replace(b"diplomatic relations", b"")
    assert b"null" not in raw
    assert b'"subject"' not in raw
    reordered = dict(reversed(list(json.loads(raw).items())))
    assert encode_event(parse_incoming(reordered)) == raw


def test_content_digest_ignores_the_service_extensions_but_not_the_content() -> None:
    event = example_event("diplomacy.meeting.held")
    stamped = stamp(event, recorded_at=RECORDED, partition_key="CHN|USA")
    assert content_digest(stamped) == content_digest(event)
    other = example_event("diplomacy.meeting.held", city="Geneva")
    assert content_digest(other) != content_digest(event)
    # the same facts written differently (case of a code) are the same content
    lower = example_dict("diplomacy.meeting.held")
    lower["data"]["parties"] = ["chn", "usa"]
    assert content_digest(parse_incoming(lower)) == content_digest(event)


def test_the_content_digest_is_blake2b_128_of_the_unstamped_bytes() -> None:
    """Pinned: ingest's idempotency records hold these digests for their whole window."""
    assert digest_of(b'{"id":"1"}') == "e3181f9b00bcb8547c2c1ee026be230e"
    event = example_event("diplomacy.meeting.held")
    assert content_digest(event) == digest_of(encode_unstamped(event))


@settings(max_examples=60, deadline=None)
@given(histories(max_size=8))
def test_any_valid_event_round_trips_through_the_wire(events: list[Event]) -> None:
    for event in events:
        raw = encode_event(event)
        assert decode_event(raw) == event
        assert parse_incoming(json.loads(raw)) == event
        assert encode_event(decode_event(raw)) == raw


def test_topics() -> None:
    assert (EVENTS_TOPIC, DEAD_LETTER_TOPIC, DEFAULT_PARTITIONS) == (
        "chancery.events",
        "chancery.events.dlq",
        6,
    )


@pytest.mark.parametrize(
    ("type_name", "key"),
    [
        ("diplomacy.envoy.appointed", "li-hui"),
        ("diplomacy.visit.announced", "li-hui"),
        ("diplomacy.visit.leg.started", "li-hui"),
        ("diplomacy.visit.postponed", "antony-blinken"),
        ("diplomacy.meeting.held", "CHN|USA"),
        ("diplomacy.relations.changed", "IRN|SAU"),
        ("diplomacy.partnership.declared", "CHN|RUS"),
        ("diplomacy.stance.declared", "CHN"),
        ("diplomacy.statement.made", "CHN|NATO|USA"),
        ("diplomacy.proposal.made", "china-peace-plan"),
        ("diplomacy.proposal.rejected", "china-peace-plan"),
        ("diplomacy.incident.occurred", "CHN|USA"),
        ("diplomacy.event.coded", "CHN|RUS"),
        ("diplomacy.event.retracted", None),
    ],
)
def test_partition_key_is_the_subject_whose_order_matters(type_name: str, key: str | None) -> None:
    assert partition_key(example_event(type_name)) == key


def test_a_pair_key_does_not_depend_on_the_order_of_the_parties() -> None:
    assert (
        partition_key(example_event("diplomacy.meeting.held", parties=["USA", "CHN"])) == "CHN|USA"
    )
    assert (
        partition_key(
            example_event(
                "diplomacy.event.coded", actor1="RUS", actor2="CHN", goldstein=None, source_url=None
            )
        )
        == "CHN|RUS"
    )


def test_retraction_target_names_the_retracted_event() -> None:
    assert retraction_target(example_event("diplomacy.event.retracted")) == (
        SOURCE,
        "diplomacy.meeting.held",
    )
    assert retraction_target(example_event("diplomacy.meeting.held")) is None


# --- the fast paths: each is the plain path, faster ---------------------------------------

recorded_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([timezone(timedelta(hours=2)), timezone(-timedelta(hours=9))]),
)


@settings(max_examples=60, deadline=None)
@given(histories(max_size=8), recorded_times, st.sampled_from(["CHN|USA", "li-hui", "a.b_c-1"]))
def test_stamping_the_encoded_event_writes_the_bytes_stamp_then_encode_writes(
    events: list[Event], recorded: datetime, key: str
) -> None:
    stamp_bytes = recorded_json(recorded)
    for event in events:
        unstamped = encode_unstamped(event)
        assert unstamped == encode_event(event)
        assert digest_of(unstamped) == content_digest(event)
        expected = encode_event(stamp(event, recorded_at=recorded, partition_key=key))
        assert stamp_encoded(unstamped, recorded=stamp_bytes, partition_key=key) == expected
        # a stamped event's unstamped encoding is the client's event again
        stamped_event = decode_event(expected)
        assert encode_unstamped(stamped_event) == unstamped


def test_stamp_encoded_refuses_what_stamp_refuses() -> None:
    unstamped = encode_unstamped(example_event("diplomacy.meeting.held"))
    with pytest.raises(ValueError, match="aware"):
        recorded_json(datetime(2023, 5, 27))
    with pytest.raises(ValueError, match="partition key"):
        stamp_encoded(unstamped, recorded=recorded_json(RECORDED), partition_key="CHN USA")


@settings(max_examples=60, deadline=None)
@given(histories(max_size=8))
def test_the_fast_parse_of_valid_bytes_is_parse_incoming(events: list[Event]) -> None:
    raws = [encode_event(event) for event in events]
    for raw in raws:
        assert parse_incoming_json(raw) == parse_incoming(json.loads(raw))
    batch = b"[" + b",".join(raws) + b"]"
    assert parse_incoming_batch_json(batch) == [parse_incoming(json.loads(r)) for r in raws]


def _bad_inputs() -> list[object]:
    good = example_dict("diplomacy.meeting.held")
    return [
        {**good, "recordedtime": "2023-05-27T09:00:00Z"},
        {**good, "recordedtime": None},  # present at all is refused, even null
        {**good, "partitionkey": "CHN|USA"},
        {**good, "type": "diplomacy.summit.held"},
        {**good, "time": "2023-05-27"},
        {**good, "time": "2023-05-27T08:00:00Z\n"},
        {**good, "extra": 1},
        {**good, "data": {**good["data"], "parties": ["CHN", "ZZZ"]}},
        {**good, "data": {**good["data"], "occurred": "2023-05-29"}},  # after `time`
        [good],
        "not an event",
    ]


@pytest.mark.parametrize("bad", _bad_inputs())
def test_the_fast_parse_leaves_every_refusal_to_parse_incoming(bad: object) -> None:
    raw = json.dumps(bad).encode()
    with pytest.raises(ValidationError):
        parse_incoming(json.loads(raw))
    assert parse_incoming_json(raw) is None
    good = json.dumps(example_dict("diplomacy.meeting.held")).encode()
    assert parse_incoming_batch_json(b"[" + good + b"," + raw + b"]") is None
    assert parse_incoming_json(b'{"id":') is None  # not JSON: the caller answers 400
    assert parse_incoming_batch_json(b"[1,") is None


def test_a_report_time_at_the_end_of_the_calendar_is_an_answer_not_a_crash() -> None:
    raw = example_dict("diplomacy.meeting.held") | {"time": "9999-12-31T23:59:59Z"}
    assert parse_incoming(raw).time.year == 9999  # it used to overflow adding the tolerance


@pytest.mark.parametrize(
    ("time", "recordedtime"),
    [
        ("2023-05-27T08:00:00", None),
        ("2023-05-27", None),
        (1684137600, None),
        ("2023-02-30T08:00:00Z", None),
        ("2023-05-27T08:00:00Z\n", None),
        ("2023-05-27T08:00:00Z", "2023-05-27T09:00:00+02:00"),
        ("2023-05-27T08:00:00Z", "2023-05-27T09:00:00"),
        ("2023-05-27T08:00:00Z", 17),
        ("2023-05-27T08:00:00+08:00", "2023-05-27T09:00:00.123456789Z"),
    ],
)
def test_json_and_python_input_are_judged_alike(time: object, recordedtime: object) -> None:
    """Timestamps are checked in pydantic-core for JSON input, by functions for Python
    input: the same values pass, and the same errors come out."""
    raw = example_dict("diplomacy.meeting.held") | {"time": time}
    if recordedtime is not None:
        raw |= {"recordedtime": recordedtime, "partitionkey": "CHN|USA"}

    def outcome(validate: Callable[[], Event]) -> object:
        try:
            return encode_event(validate())
        except ValidationError as exc:
            return [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]

    adapter: TypeAdapter[Event] = TypeAdapter(Event)
    assert outcome(lambda: decode_event(json.dumps(raw))) == outcome(
        lambda: adapter.validate_python(raw)
    )
