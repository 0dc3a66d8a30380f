"""The only JSON path: client dicts and log bytes in, canonical bytes out.

- `parse_incoming`: a client's event (a decoded JSON object). The service's extensions are
  refused, and errors carry the field's `loc` without the union's tag (`("data", "legs", 0,
  "country")`), so ingest can name the field.
- `decode_event`: the log's decoder. One module-level `TypeAdapter` over the discriminated
  union, fed the raw bytes (`validate_json`: no intermediate dict).
- `encode_event`: canonical JSON: fields in declaration order, no whitespace, absent values
  left out. The same event always encodes to the same bytes, which is what
  `content_digest` and the golden files rely on.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from .catalogue import EVENT_TYPES, Event
from .envelope import EXTENSIONS, EventEnvelope
from .errors import field_error

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_PARTITION_KEY = re.compile(r"^[A-Za-z0-9_.|-]{1,512}$")

E = TypeVar("E", bound=EventEnvelope)


def parse_incoming(obj: object) -> Event:
    """Validate one event as a client sent it. Raises `ValidationError` naming each field."""
    if not isinstance(obj, dict):
        raise field_error((), "event_object", "an event is a JSON object", obj)
    problems = [
        InitErrorDetails(
            type=PydanticCustomError(
                "extension_reserved",
                "{name} is set by Chancery when it accepts the event; a client must not send it",
                {"name": name},
            ),
            loc=(name,),
            input=obj[name],
        )
        for name in EXTENSIONS
        if name in obj
    ]
    tag = obj.get("type")
    cls = EVENT_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        problems.append(
            InitErrorDetails(
                type=PydanticCustomError(
                    "unknown_type",
                    "'{type}' is not a Chancery event type; known types: {known}",
                    {"type": str(tag), "known": ", ".join(EVENT_TYPES)},
                ),
                loc=("type",),
                input=tag,
            )
        )
        raise ValidationError.from_exception_data("Event", problems)
    if not problems:
        return cls.model_validate(obj)
    try:
        cls.model_validate({k: v for k, v in obj.items() if k not in EXTENSIONS})
    except ValidationError as exc:
        problems.extend(
            InitErrorDetails(
                type=PydanticCustomError(error["type"], error["msg"]),
                loc=error["loc"],
                input=error["input"],
            )
            for error in exc.errors()
        )
    raise ValidationError.from_exception_data(cls.__name__, problems)


def decode_event(raw: bytes | str) -> Event:
    """An event from the log (extensions allowed). Raises `ValidationError`."""
    return _EVENT_ADAPTER.validate_json(raw)


def encode_event(event: Event) -> bytes:
    """Canonical JSON bytes of an event."""
    return _EVENT_ADAPTER.dump_json(event, exclude_none=True)


def stamp(event: E, *, recorded_at: datetime, partition_key: str) -> E:
    """A copy of `event` with the service's extensions set (`recordedtime` in UTC)."""
    if recorded_at.utcoffset() is None:
        raise ValueError("recorded_at must be an aware datetime")
    if not _PARTITION_KEY.match(partition_key):
        raise ValueError(f"not a partition key: {partition_key[:40]!r}")
    return event.model_copy(
        update={"recordedtime": recorded_at.astimezone(UTC), "partitionkey": partition_key}
    )


def content_digest(event: Event) -> str:
    """Digest of what the client said: the canonical event without the service's extensions.

    Ingest compares it for a repeated (source, id): same digest, a duplicate; different, a
    conflict.
    """
    bare = event.model_copy(update={"recordedtime": None, "partitionkey": None})
    return hashlib.blake2b(encode_event(bare), digest_size=16).hexdigest()
