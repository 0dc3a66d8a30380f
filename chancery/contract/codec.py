"""The only JSON path: client dicts and log bytes in, canonical bytes out.

- `parse_incoming`: a client's event (a decoded JSON object). The service's extensions are
  refused, and errors carry the field's `loc` without the union's tag (`("data", "legs", 0,
  "country")`), so ingest can name the field.
- `decode_event`: the log's decoder. One module-level `TypeAdapter` over the discriminated
  union, fed the raw bytes (`validate_json`: no intermediate dict).
- `encode_event`: canonical JSON: fields in declaration order, no whitespace, absent values
  left out. The same event always encodes to the same bytes, which is what
  `content_digest` and the golden files rely on.

Fast paths, each held equal to the plain path by the unit tests:

- `parse_incoming_json` / `parse_incoming_batch_json`: one client event, or a JSON array of
  them, validated straight from the request bytes (pydantic-core, no intermediate objects).
  They answer None whenever the plain path would refuse anything; the caller then runs
  `parse_incoming` on the decoded JSON for the errors, so errors come from one place.
- `encode_unstamped` + `stamp_encoded`: one encoding of a client's event gives both its
  content digest (`digest_of`) and, by splicing the two extensions in where the canonical
  encoding puts them, the bytes of `encode_event(stamp(event, ...))`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from .catalogue import EVENT_TYPES, Event
from .envelope import EXTENSIONS, EventEnvelope, UtcTimestamp, blake2b_128
from .errors import field_error

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_BATCH_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])
_PARTITION_KEY = re.compile(r"^[A-Za-z0-9_.|-]{1,512}$")
# In the canonical encoding the extensions sit between `datacontenttype` (always written: it
# has a value by default) and `data`. A JSON string escapes every `"` it holds, so these
# bytes occur once, at the top level.
_BEFORE_EXTENSIONS = b'"datacontenttype":"application/json",'

_RECORDED_ADAPTER: TypeAdapter[datetime] = TypeAdapter(UtcTimestamp)

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


def _no_extensions(event: Event) -> bool:
    fields = event.model_fields_set
    return "recordedtime" not in fields and "partitionkey" not in fields


def parse_incoming_json(raw: bytes | str) -> Event | None:
    """`parse_incoming` of the JSON object `raw`, when that succeeds; None when it would not
    (or `raw` is not JSON): then decode `raw` and call `parse_incoming` for the errors."""
    try:
        event = _EVENT_ADAPTER.validate_json(raw)
    except ValidationError:
        return None
    return event if _no_extensions(event) else None


def parse_incoming_batch_json(raw: bytes | str) -> list[Event] | None:
    """`[parse_incoming(item) for item in array]` of the JSON array `raw`, when every item is
    a valid client event; None otherwise (then run the plain path for the errors)."""
    try:
        events = _BATCH_ADAPTER.validate_json(raw)
    except ValidationError:
        return None
    return events if all(_no_extensions(e) for e in events) else None


def decode_event(raw: bytes | str) -> Event:
    """An event from the log (extensions allowed). Raises `ValidationError`."""
    return _EVENT_ADAPTER.validate_json(raw)


def encode_event(event: Event) -> bytes:
    """Canonical JSON bytes of an event."""
    # The event type's own serializer: the bytes the union's would write (its tag only picks
    # this serializer), without the union's dispatch, which cost half of the encoding.
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)


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
    return digest_of(encode_unstamped(event))


def encode_unstamped(event: Event) -> bytes:
    """The canonical bytes of `event` without the service's extensions (what
    `content_digest` digests, and what `stamp_encoded` stamps)."""
    if event.recordedtime is not None or event.partitionkey is not None:
        event = event.model_copy(update={"recordedtime": None, "partitionkey": None})
    return encode_event(event)


def digest_of(unstamped: bytes) -> str:
    """`content_digest` of the event whose `encode_unstamped` bytes these are."""
    return blake2b_128(unstamped)


def recorded_json(recorded_at: datetime) -> bytes:
    """`recordedtime` as the canonical encoding writes it (UTC): compute it once per request
    and pass it to every `stamp_encoded` of that request."""
    if recorded_at.utcoffset() is None:
        raise ValueError("recorded_at must be an aware datetime")
    return _RECORDED_ADAPTER.dump_json(recorded_at.astimezone(UTC))


def stamp_encoded(unstamped: bytes, *, recorded: bytes, partition_key: str) -> bytes:
    """`encode_event(stamp(event, recorded_at=..., partition_key=...))`, from
    `encode_unstamped(event)` and `recorded_json(recorded_at)`, without encoding again."""
    if not _PARTITION_KEY.match(partition_key):
        raise ValueError(f"not a partition key: {partition_key[:40]!r}")
    at = unstamped.index(_BEFORE_EXTENSIONS) + len(_BEFORE_EXTENSIONS)
    # A partition key's characters need no escaping in JSON.
    return b"".join(
        (
            unstamped[:at],
            b'"recordedtime":',
            recorded,
            b',"partitionkey":"',
            partition_key.encode(),
            b'",',
            unstamped[at:],
        )
    )
