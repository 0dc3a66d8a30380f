"""Request examples for the OpenAPI docs: one per event type, from the article's events.

They are the contract's golden files (chancery/contract/golden/), so every example in the
docs is also a tested, valid event of its type.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def _golden() -> dict[str, dict[str, Any]]:
    examples: dict[str, dict[str, Any]] = {}
    folder = resources.files("chancery.contract") / "golden"
    for item in sorted(folder.iterdir(), key=lambda f: f.name):
        if item.name.endswith(".json"):
            event = json.loads(item.read_text())
            # What a client sends: the service sets these two itself.
            event.pop("recordedtime", None)
            event.pop("partitionkey", None)
            examples[event["type"]] = event
    return examples


_EVENTS = _golden()

EVENT_EXAMPLES: dict[str, Any] = {
    type_: {"summary": type_, "value": event} for type_, event in _EVENTS.items()
}
BATCH_EXAMPLE: list[dict[str, Any]] = [
    _EVENTS[t] for t in ("diplomacy.meeting.held", "diplomacy.relations.changed") if t in _EVENTS
]
