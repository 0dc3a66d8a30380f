"""Golden files pin the wire format of every type; the exported JSON Schemas describe them.

`chancery/contract/golden/<type>.json` is one event of each type exactly as the log holds
it (canonical JSON, with the service's extensions) plus a newline. They ship in the package
because ingest's OpenAPI examples are these same files. `schemas/` holds the exported
schemas. A deliberate format change regenerates all of them:

    CHANCERY_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/contract/test_golden.py

and the diff is the review.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from chancery.contract import (
    EVENT_TYPES,
    Event,
    decode_event,
    encode_event,
    export_json_schemas,
    partition_key,
    stamp,
)

from .examples import example_event

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "chancery" / "contract" / "golden"
SCHEMAS = ROOT / "schemas"
UPDATE = os.environ.get("CHANCERY_UPDATE_GOLDEN") == "1"
RECORDED = datetime(2023, 5, 27, 9, 30, 0, 250000, tzinfo=UTC)


def golden_event(type_name: str) -> Event:
    event = example_event(type_name)
    key = partition_key(event) or partition_key(example_event("diplomacy.meeting.held"))
    assert key is not None
    return stamp(event, recorded_at=RECORDED, partition_key=key)


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.fixture(scope="module", autouse=True)
def _update() -> None:
    if not UPDATE:
        return
    GOLDEN.mkdir(exist_ok=True)
    for type_name in EVENT_TYPES:
        raw = encode_event(golden_event(type_name)) + b"\n"
        (GOLDEN / f"{type_name}.json").write_bytes(raw)
    SCHEMAS.mkdir(exist_ok=True)
    for name, schema in export_json_schemas().items():
        (SCHEMAS / f"{name}.json").write_text(schema_text(schema), encoding="utf-8")


def test_every_type_has_exactly_one_golden_file() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("type_name", list(EVENT_TYPES))
def test_a_golden_file_round_trips_byte_for_byte(type_name: str) -> None:
    raw = (GOLDEN / f"{type_name}.json").read_bytes()
    event = decode_event(raw)
    assert event.type == type_name
    assert encode_event(event) + b"\n" == raw


@pytest.mark.parametrize("type_name", list(EVENT_TYPES))
def test_a_golden_file_is_what_the_contract_writes_today(type_name: str) -> None:
    raw = (GOLDEN / f"{type_name}.json").read_bytes()
    assert raw == encode_event(golden_event(type_name)) + b"\n"


@pytest.mark.parametrize("type_name", list(EVENT_TYPES))
def test_a_golden_file_is_valid_against_its_schema_and_the_envelopes(type_name: str) -> None:
    schemas = export_json_schemas()
    instance = json.loads((GOLDEN / f"{type_name}.json").read_bytes())
    for name in (type_name, "envelope"):
        Draft202012Validator.check_schema(schemas[name])
        errors = list(Draft202012Validator(schemas[name]).iter_errors(instance))
        assert errors == [], [e.message for e in errors]


def test_the_schema_refuses_what_the_contract_refuses() -> None:
    validator = Draft202012Validator(export_json_schemas()["diplomacy.meeting.held"])
    instance = json.loads((GOLDEN / "diplomacy.meeting.held.json").read_bytes())
    broken = [
        {**instance, "type": "diplomacy.visit.announced"},
        {**instance, "extra": 1},
        {k: v for k, v in instance.items() if k != "time"},
        {**instance, "data": {**instance["data"], "occurred": "May 2023"}},
        {**instance, "data": {**instance["data"], "parties": ["CHN"]}},
        {**instance, "data": {**instance["data"], "cameo": "42x"}},
        {**instance, "data": {**instance["data"], "city": "x" * 121}},
    ]
    for candidate in broken:
        assert not validator.is_valid(candidate), candidate


def test_the_export_has_the_envelope_and_every_type() -> None:
    schemas = export_json_schemas()
    assert set(schemas) == {"envelope", *EVENT_TYPES}
    envelope = schemas["envelope"]
    assert set(envelope["required"]) == {"specversion", "id", "source", "type", "time", "data"}
    assert envelope["properties"]["data"]["type"] == "object"
    coded = schemas["diplomacy.event.coded"]
    data = coded["$defs"]["EventCodedData"]
    assert list(data["properties"]) == [
        "actor1",
        "actor2",
        "cameo",
        "goldstein",
        "occurred",
        "source_url",
        "mentions",
    ]
    assert set(data["required"]) == {"actor1", "actor2", "cameo", "occurred"}


def test_the_committed_schemas_are_the_export() -> None:
    exported = export_json_schemas()
    assert sorted(p.stem for p in SCHEMAS.glob("*.json")) == sorted(exported)
    for name, schema in exported.items():
        assert (SCHEMAS / f"{name}.json").read_text(encoding="utf-8") == schema_text(schema), name
