"""The envelope, identity, the codec and routing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from pydantic import ValidationError

from chancery.contract import (
    DEAD_LETTER_TOPIC,
    DEFAULT_PARTITIONS,
    EVENT_TYPES,
    EVENTS_TOPIC,
    Event,
    MeetingHeld,
    content_digest,
    decode_event,
    encode_event,
    event_key,
    parse_incoming,
    partition_key,
    retraction_target,
    stamp,
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
