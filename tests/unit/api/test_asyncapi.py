"""docs/asyncapi.yaml, the description for systems that read Kafka directly, stays true to
the contract: one message per event type, schemas that exist, examples that validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chancery.contract import EVENT_TYPES, EVENTS_TOPIC, RECORD_CONTENT_TYPE, decode_event

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> object:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_it_is_asyncapi_3_for_the_event_topic(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"].startswith("3.")
    assert doc["channels"]["events"]["address"] == EVENTS_TOPIC
    assert doc["defaultContentType"] == RECORD_CONTENT_TYPE


def test_every_event_type_is_a_message_with_its_key_and_schema(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    by_type = {m["name"]: m for m in messages.values() if m["name"].startswith("diplomacy.")}
    assert set(by_type) == set(EVENT_TYPES)
    for type_name, message in by_type.items():
        assert message["bindings"]["kafka"]["key"]["description"]
        ref = message["payload"]["schema"]["$ref"]
        assert (DOC.parent / ref).resolve() == ROOT / "schemas" / f"{type_name}.json"


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    for ref in refs(doc):
        if ref.startswith("#/"):
            resolve(doc, ref)
        else:
            assert (DOC.parent / ref).exists(), ref


def test_the_examples_are_valid_events_of_their_type(doc: dict[str, Any]) -> None:
    for message in doc["components"]["messages"].values():
        if not message["name"].startswith("diplomacy."):
            continue
        schema = json.loads((DOC.parent / message["payload"]["schema"]["$ref"]).read_text())
        for example in message["examples"]:
            payload = example["payload"]
            jsonschema.validate(payload, schema)
            assert decode_event(json.dumps(payload)).type == message["name"]


def test_it_tells_that_dlq_replay_appends_too_with_its_header(doc: dict[str, Any]) -> None:
    from services.cli.dlq import REPLAYED_FROM

    headers = doc["components"]["schemas"]["RecordHeaders"]["properties"]
    assert REPLAYED_FROM in headers
    append = doc["operations"]["appendEvents"]
    assert "dlq replay" in append["title"]
    assert REPLAYED_FROM in append["summary"]
    assert "dlq replay" in doc["info"]["description"]
