"""The plain twin (chancery/contract/plain.py) against pydantic, on one corpus.

The twin is a fast *accept*: ingest runs pydantic whenever it answers None, and pydantic
then gives today's answer and errors. So what must hold for every input is: the twin
accepts it => pydantic accepts it, into the very same `Incoming` (identity, canonical bytes,
partition key, retraction target). And, so that the twin is worth having, it does accept
the events it is made for: the golden ones of its types and every imported row.

The corpus: the golden events; the GDELT 2.0 and ICEWS sample rows as the importers map
them, one by one and as batches; every invalid case of test_bad_input.py; each field of a
coded event and of a retraction broken in each way (missing, null, each wrong JSON type,
out of range, bad pattern, non-canonical but valid, extra fields, wrong time order); raw
bodies a dict cannot express (duplicate keys, NaN, escapes); and a hypothesis property over
any JSON value in any field.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chancery.contract import EVENT_TYPES, When, encode_event, parse_incoming_json
from chancery.contract.catalogue import Occurrence
from chancery.contract.envelope import Payload
from chancery.contract.plain import (
    PLAIN_TYPES,
    Incoming,
    accept_batch_json,
    accept_json,
    incoming,
)
from services.cli.importers.datasets import DATASETS, DatasetName
from services.cli.importers.events import Mapped
from services.cli.importers.reading import TabFile

from .examples import example_dict
from .strategies import SOURCES, coded_data, when_texts
from .test_bad_input import CASES

pytestmark = pytest.mark.unit

CODED = "diplomacy.event.coded"
RETRACTED = "diplomacy.event.retracted"
REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "reference"
GOLDEN = Path(__file__).resolve().parents[3] / "chancery" / "contract" / "golden"
SAMPLES: dict[DatasetName, Path] = {
    "gdelt": REFERENCE / "gdelt2_export_20191024143000.tsv.zip",
    "icews": REFERENCE / "icews_events_2018-06-01_02_sample.tab.zip",
}


def pydantic_reading(raw: bytes) -> Incoming | None:
    """What ingest makes of `raw` without the twin (None: refused)."""
    event = parse_incoming_json(raw)
    return None if event is None else incoming(event)


def judge(raw: bytes) -> tuple[Incoming | None, Incoming | None]:
    """(the twin's reading, pydantic's), after checking the one rule between them."""
    fast = accept_json(raw)
    slow = pydantic_reading(raw)
    assert fast is None or fast == slow, (raw, fast, slow)
    return fast, slow


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --- what the twin is made for: it accepts, into pydantic's bytes ----------------------------


def test_the_twin_takes_the_types_whose_validators_it_can_state() -> None:
    # Every other type has a model validator (or a Person, which has one) with no plain
    # equivalent: its events go to pydantic. Adding an equivalent adds the type here.
    assert {CODED, RETRACTED} == PLAIN_TYPES


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
def test_a_plain_payload_says_when_it_occurred_in_its_occurred_field(type_name: str) -> None:
    # The twin's equivalent of the envelope's "not occurred after reported" reads a plain
    # payload's `occurred`, where the model reads `Payload.when`: the two must agree.
    payload: type[Payload] = EVENT_TYPES[type_name].model_fields["data"].annotation  # type: ignore[assignment]
    has_when = payload.when is not Payload.when
    assert has_when == ("occurred" in payload.model_fields)
    assert not has_when or issubclass(payload, Occurrence) or payload.__name__ == "EventCodedData"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_each_golden_event_is_read_alike(path: Path) -> None:
    obj = json.loads(path.read_text())
    for extension in ("recordedtime", "partitionkey"):
        obj.pop(extension)
    fast, slow = judge(dumps(obj))
    assert slow is not None
    assert (fast is not None) == (obj["type"] in PLAIN_TYPES)


def _imported(dataset: DatasetName) -> list[bytes]:
    """The sample's events as `chancery import` sends them."""
    with TabFile(SAMPLES[dataset]) as file:
        rows = list(DATASETS[dataset].rows(file.lines(), SAMPLES[dataset].name))
    return [
        encode_event(event)
        for _, outcome in rows
        if isinstance(outcome, Mapped)
        for event in outcome.events
    ]


@pytest.mark.parametrize("dataset", sorted(SAMPLES))
def test_every_imported_row_is_read_alike_and_its_coded_events_taken(
    dataset: DatasetName,
) -> None:
    raws = _imported(dataset)
    assert len(raws) > 300
    taken = 0
    for raw in raws:
        fast, slow = judge(raw)
        assert slow is not None
        if json.loads(raw)["type"] == CODED:
            assert fast is not None
            taken += 1
    assert taken > 300
    # and as the batches the importer sends
    for start in range(0, len(raws), 500):
        chunk = raws[start : start + 500]
        body = b"[" + b",".join(chunk) + b"]"
        expected = [pydantic_reading(raw) for raw in chunk]
        fast_batch = accept_batch_json(body)
        if all(json.loads(raw)["type"] in PLAIN_TYPES for raw in chunk):
            assert fast_batch == expected
        else:
            assert fast_batch is None


def test_a_batch_with_one_bad_event_is_left_to_pydantic() -> None:
    good = dumps(example_dict(CODED))
    bad = dumps(example_dict(CODED, cameo="999"))
    assert accept_batch_json(b"[" + good + b"," + good + b"]") == [pydantic_reading(good)] * 2
    assert accept_batch_json(b"[" + good + b"," + bad + b"]") is None
    assert accept_batch_json(b"[]") == []  # the caller refuses an empty batch, as before
    assert accept_batch_json(b"{}") is None
    assert accept_batch_json(b"[" + good) is None


# --- the invalid: pydantic refuses, so must the twin -----------------------------------------


@pytest.mark.parametrize("build", [pytest.param(build, id=name) for name, build, *_ in CASES])
def test_every_bad_input_case_is_refused_by_both(build: Any) -> None:
    fast, slow = judge(dumps(build()))
    assert slow is None
    assert fast is None


WRONG_TYPES: list[object] = [None, 1, 1.5, True, [], {}, "", "x"]


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in obj.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


def _set(obj: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


def _without(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target = out
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return out


def _bases() -> list[dict[str, Any]]:
    return [example_dict(CODED), example_dict(RETRACTED)]


def _every_field_broken() -> Iterator[tuple[str, dict[str, Any]]]:
    for base in _bases():
        for path in _paths(base):
            name = ".".join(path)
            yield f"{base['type']} without {name}", _without(base, path)
            for value in WRONG_TYPES:
                yield f"{base['type']} {name}={value!r}", _set(base, path, value)
        yield f"{base['type']} with an extra field", {**base, "extra": 1}
        yield f"{base['type']} with an extra data field", _set(base, ("data", "extra"), 1)
        for extension in ("recordedtime", "partitionkey"):
            yield f"{base['type']} with {extension}", {**base, extension: "2023-05-27T09:00:00Z"}


@pytest.mark.parametrize(
    "case", [pytest.param(obj, id=name) for name, obj in _every_field_broken()]
)
def test_each_field_broken_in_each_way_is_read_alike(case: dict[str, Any]) -> None:
    judge(dumps(case))


# Values of one field: (value, pydantic accepts it). Where pydantic accepts but rewrites the
# value (`+00:00` is written `Z`), the twin must refuse or write what pydantic writes.
FIELD_VALUES: dict[tuple[str, ...], list[tuple[object, bool]]] = {
    ("time",): [
        ("2023-05-27T08:00:00Z", True),
        ("2023-05-27T08:00:00+08:00", True),
        ("2023-05-27T08:00:00-05:30", True),
        ("2023-05-27T08:00:00+00:00", True),
        ("2023-05-27T08:00:00-00:00", True),
        ("2023-05-27T08:00:00.5Z", True),
        ("2023-05-27T08:00:00.500000Z", True),
        ("2023-05-27T08:00:00.000000Z", True),
        ("2023-05-27T08:00:00.1234567Z", True),
        ("2023-05-27T08:00:00.123456789+01:00", True),
        ("2023-05-27T23:59:59+23:59", True),
        ("9998-12-31T23:59:59-01:00", True),
        ("2023-05-27t08:00:00z", False),
        ("2023-05-27 08:00:00Z", False),
        ("2023-05-27T08:00:00", False),
        ("2023-05-27T08:00Z", False),
        ("2023-05-27", False),
        ("2023-02-30T08:00:00Z", False),
        ("2023-05-27T24:00:00Z", False),
        ("2023-05-27T08:60:00Z", False),
        ("2023-05-27T08:00:60Z", False),
        ("2023-05-27T08:00:00+24:00", False),
        ("2023-05-27T08:00:00+05:60", False),
        ("0000-05-27T08:00:00Z", False),
        ("2023-05-27T08:00:00Z\n", False),
        ("\u0662\u0660\u0662\u0663-05-27T08:00:00Z", False),
        (1685174400, False),
    ],
    ("data", "occurred"): [
        ("2023-03-20", True),
        ("2023-03", True),
        ("2023-W12", True),
        ("2023-03-20/2023-03-22", True),
        ("2023-03-20T10:00+03:00", True),
        ("2023-03-20T10:00:00.25Z", True),
        ("2023-05-28", True),  # a day after the report: the tolerance
        ("2023-05-29", False),  # after it
        ("2023-06", False),
        ("2023-03-22/2023-03-20", False),
        ("2023-02-30", False),
        ("2023-W54", False),
        ("2023-13", False),
        ("0999-03-20", False),
        ("2023-03-20\n", True),  # the parser's `$`: pydantic takes it, the twin leaves it
        ("\u0662\u0660\u0662\u0663-03-20", True),  # likewise its Unicode digits
        ("2023-03-20T10:00+24:00", False),
        ("2023-03-20 ", False),
    ],
    ("data", "goldstein"): [
        (1.9, True),
        (-10, True),
        (10, True),
        (0, True),
        (-0.0, True),
        (7, True),
        (2.25, False),
        (10.1, False),
        (-10.5, False),
        (0.30000000000000004, True),  # pydantic rounds it to 0.3: the twin leaves it
        (1.9000000001, True),
        ("1.9", True),  # pydantic's lax mode reads the string
    ],
    ("data", "cameo"): [
        ("042", True),
        ("0211", True),
        ("42", False),
        ("999", False),
        ("04a", False),
        (" 042", False),
        ("042\n", False),
        (42, False),
    ],
    ("data", "actor1"): [
        ("USA", True),
        ("NATO", True),
        ("usa", True),  # pydantic upper-cases it: the twin leaves it
        ("Nato", True),
        ("NAT", False),
        ("XYZ", False),
        ("USA ", False),
        ("USA\n", False),
    ],
    ("data", "mentions"): [
        (0, True),
        (1_000_000_000, True),
        (1_000_000_001, False),
        (-1, False),
        (5.0, True),  # lax mode: a whole float
        ("5", True),  # lax mode: a numeric string
        (5.5, False),
        (True, True),
    ],
    ("data", "source_url"): [
        ("https://news.example/a", True),
        ("http://news.example/a?b=c#d", True),
        ("https://news.example/\u00e9", True),  # not ASCII: the twin leaves it
        ("https://news.example/a b", False),
        ("https://news.example/a\u00a0b", False),
        ("https://news.example/a\n", False),
        ("https://x", False),
        ("ftp://news.example/a", False),
        ("https://news.example/" + "a" * 2030, False),
    ],
    ("id",): [
        ("abc-1", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("-abc", False),
        ("ab c", False),
        ("abc\n", False),
        ("\u00e9", False),
    ],
    ("source",): [
        ("urn:x:y", True),
        ("https://a.example/b?c=d&e=%20", True),
        ("a b", False),
        ("a\n", False),
        ("a" * 513, False),
    ],
    ("subject",): [
        ("CHN|RUS", True),
        ("\u00e9\u4e2d \u2028 \x7f", True),
        ("\x01\n", True),
        ("", False),
        ("a" * 257, False),
        (None, True),  # an explicit null: pydantic takes it, the twin leaves it
    ],
    ("specversion",): [("1.0", True), ("1.1", False), (1.0, False)],
    ("type",): [("diplomacy.unknown", False), ("diplomacy.meeting.held", False)],
    ("datacontenttype",): [("application/json", True), ("text/plain", False)],
}


def _valued() -> Iterator[tuple[str, dict[str, Any], bool]]:
    base = example_dict(CODED)
    for path, values in FIELD_VALUES.items():
        for value, valid in values:
            yield f"{'.'.join(path)}={value!r}", _set(base, path, value), valid


@pytest.mark.parametrize(
    ("case", "valid"), [pytest.param(obj, valid, id=name) for name, obj, valid in _valued()]
)
def test_each_value_of_each_field_is_read_alike(case: dict[str, Any], valid: bool) -> None:
    _, slow = judge(dumps(case))
    assert (slow is not None) == valid


@pytest.mark.parametrize(
    "target",
    [
        {"source": example_dict(RETRACTED)["source"], "id": example_dict(RETRACTED)["id"]},
        {"source": "urn:x", "id": example_dict(RETRACTED)["id"]},
        {"source": example_dict(RETRACTED)["source"], "id": "other"},
        {"source": "urn:x", "id": "a", "extra": 1},
        {"source": "urn:x"},
    ],
)
def test_a_retraction_of_itself_or_of_a_malformed_target_is_read_alike(
    target: dict[str, Any],
) -> None:
    judge(dumps(example_dict(RETRACTED, target=target)))


def test_bodies_a_dict_cannot_write_are_read_alike() -> None:
    good = dumps(example_dict(CODED))
    text = good.decode()
    bodies = [
        good,
        b" \n" + good + b"\n",
        text.replace('"mentions":12', '"mentions":12,"mentions":13').encode(),
        text.replace('"cameo":"042"', '"cameo":"042","cameo":"999"').encode(),
        text.replace('"cameo":"042"', '"cameo":"999","cameo":"042"').encode(),
        text.replace(
            '"type":"diplomacy.event.coded"', '"type":"x","type":"diplomacy.event.coded"'
        ).encode(),
        text.replace('"goldstein":1.9', '"goldstein":NaN').encode(),
        text.replace('"goldstein":1.9', '"goldstein":1e400').encode(),
        text.replace('"goldstein":1.9', '"goldstein":19e-1').encode(),
        text.replace('"goldstein":1.9', '"goldstein":1.90').encode(),
        text.replace('"mentions":12', '"mentions":12.0').encode(),
        text.replace('"mentions":12', '"mentions":1.2e1').encode(),
        text.replace('"actor1":"CHN"', '"actor1":"\\u0043HN"').encode(),
        text.replace('"id":"', '"id":"\\u00e9').encode(),
        text.replace('"subject"', '"x"')
        .replace('"source":', '"subject":"\\ud800","source":')
        .encode(),
        text.replace('"source":', '"subject":"\\ud83d\\ude00","source":').encode(),
        text.replace('"source":', '"subject":"\\u0000","source":').encode(),
        good[:-1] + b",}",
        good + b"x",
        b"\xef\xbb\xbf" + good,
        good.replace(b"Moscow", b"Mosc\xffw"),
        b"[" + good + b"]",
        text.replace('"mentions":12', '"mentions":' + "[" * 100_000 + "]" * 100_000).encode(),
        text.replace(
            '"occurred":', '"x":' + "[" * 100_000 + "]" * 100_000 + ',"occurred":'
        ).encode(),
        *(
            text.replace('"source":', f'"subject":"a{raw}b","source":').encode()
            for raw in ("\t", "\n", "\x01", "\x1f", "\x7f")  # raw: JSON forbids all but DEL
        ),
        b"null",
        b"",
    ]
    for body in bodies:
        judge(body)
    assert accept_json(good) is not None


# --- any JSON value in any field --------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "2023-05-27T08:00:00Z",
            "2023-05-27T08:00:00.000001+14:00",
            "2023-03-20",
            "2023-W12",
            "042",
            "USA",
            "EU",
            "https://news.example/a",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@st.composite
def time_texts(draw: st.DrawFn) -> str:
    """Date-times near and off RFC 3339: each part drawn from valid and invalid pieces."""
    digits = st.text(alphabet="0123456789\u0663", min_size=1, max_size=5)
    sep = st.sampled_from(["-", "T", ":", "t", " ", "."])
    parts = [draw(digits) for _ in range(6)]
    seps = [draw(sep) for _ in range(5)]
    fraction = draw(st.sampled_from(["", ".5", ".000000", ".123456", ".1234567", ".0"]))
    offset = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+08:00", "+24:00", "-05:60", ""]))
    return "".join(p + s for p, s in zip(parts, [*seps, ""], strict=True)) + fraction + offset


@st.composite
def broken_events(draw: st.DrawFn) -> dict[str, Any]:
    base: dict[str, Any] = draw(st.sampled_from(_bases()))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(base))))
        if path[-1] in {"time", "occurred"}:
            value: object = draw(time_texts() | json_values)
        else:
            value = draw(json_values)
        base = _set(base, path, value)
    return base


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_events())
def test_any_value_in_any_field_is_read_alike(event: dict[str, Any]) -> None:
    judge(dumps(event))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.timezones()), st.sampled_from(["isoformat", "Z"]))
def test_any_report_time_is_read_alike(time: Any, form: str) -> None:
    text = time.isoformat()
    if form == "Z" and text.endswith("+00:00"):
        text = text.removesuffix("+00:00") + "Z"
    judge(dumps(_set(example_dict(CODED), ("time",), text)))


def _canonical(time: datetime) -> str:
    """A date-time as pydantic writes it: Z for UTC, six digits of fraction or none."""
    text = time.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


@st.composite
def coded_events(draw: st.DrawFn) -> dict[str, Any]:
    """Valid coded events written as pydantic writes them: the twin must take every one."""
    occurred = draw(when_texts())
    reported = max(When(occurred).start, datetime(2023, 1, 1, tzinfo=UTC)) + timedelta(
        minutes=draw(st.integers(0, 60 * 24 * 30))
    )
    offset = timedelta(minutes=draw(st.integers(-23 * 60, 23 * 60)))
    data = draw(coded_data(occurred, max_mentions=1_000_000_000))
    if draw(st.booleans()):
        data["source_url"] = "https://news.example/" + draw(
            st.text(alphabet="abcdefghij0123456789-._~/?=&%", max_size=60)
        )
    event = {
        "specversion": "1.0",
        "id": draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@~-]{0,20}\Z")),
        "source": draw(st.sampled_from(SOURCES)),
        "type": CODED,
        "time": _canonical(reported.astimezone(timezone(offset))),
        "data": data,
    }
    if draw(st.booleans()):
        event["subject"] = draw(st.text(min_size=1, max_size=30))
    order: list[str] = draw(st.permutations(list(event)))
    return {k: event[k] for k in order}


@settings(max_examples=300, deadline=None)
@given(st.lists(coded_events(), min_size=1, max_size=5))
def test_any_valid_coded_event_is_taken_into_pydantics_bytes(events: list[dict[str, Any]]) -> None:
    for event in events:
        fast, slow = judge(dumps(event))
        assert slow is not None
        assert fast is not None
    raws = [dumps(event) for event in events]
    assert accept_batch_json(b"[" + b",".join(raws) + b"]") == [pydantic_reading(r) for r in raws]
