"""JSON Schema (draft 2020-12) of the envelope and of each event type, for other systems.

`export_json_schemas()` returns `{"envelope": ..., "<type>": ..., ...}`. The envelope schema
describes what every event shares (its `data` is any object); each type's schema is the
full event of that type. The files in `schemas/` are this export, checked by a test.
"""

from __future__ import annotations

from typing import Any

from .catalogue import EVENT_TYPES
from .envelope import EventEnvelope

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE = "https://chancery.example/schemas/"


def _finish(schema: dict[str, Any], name: str, title: str) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, "$id": f"{SCHEMA_BASE}{name}.json", **schema, "title": title}


def envelope_schema() -> dict[str, Any]:
    schema = EventEnvelope.model_json_schema()
    schema.pop("$defs", None)
    schema["properties"]["data"] = {
        "type": "object",
        "description": "The payload; its shape depends on `type` (see that type's schema).",
    }
    schema["description"] = (
        "CloudEvents 1.0 envelope (structured JSON mode) shared by every Chancery event. "
        "recordedtime and partitionkey are set by Chancery, never by a client."
    )
    return _finish(schema, "envelope", "Chancery event envelope")


def export_json_schemas() -> dict[str, dict[str, Any]]:
    """The envelope's schema and one schema per event type, keyed by type name."""
    schemas = {"envelope": envelope_schema()}
    for name, cls in EVENT_TYPES.items():
        schemas[name] = _finish(cls.model_json_schema(), name, name)
    return schemas
