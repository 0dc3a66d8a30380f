"""From request bytes to validated events, with errors that name the index and the field.

Limits are checked before work: the body size while it streams in (413), the content type
(415), the JSON syntax (400), the batch length (422), then each event (422). Every event of
a batch is validated, so one answer lists every bad event, not only the first.

`parse_valid_body` first tries the contract's fast paths: its plain-data twin (msgspec Structs
generated from the models: chancery/contract/plain.py), which takes the event types whose
rules it can state (the imports' coded events, retractions) and accepts only what pydantic
accepts, into the same bytes; then the whole body validated from its bytes by
pydantic-core. Each succeeds only when every event is valid; any other body goes the plain
way above, which gives the status and the errors. (A batch of valid events over the length
limit is therefore validated before it is refused; the body size limit bounds that work.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pydantic_core
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from chancery.contract import (
    EVENT_TYPES,
    Event,
    parse_incoming,
    parse_incoming_batch_json,
    parse_incoming_json,
)
from chancery.contract.plain import Incoming, accept_batch_json, accept_json, incoming
from services.platform.web import Problem, field_path

SINGLE_TYPES = ("application/cloudevents+json", "application/json")
BATCH_TYPES = ("application/cloudevents-batch+json", "application/json")


def check_content_type(header: str | None, allowed: Sequence[str]) -> None:
    check_media_type((header or "").split(";", 1)[0].strip().lower(), allowed)


def check_media_type(media: str, allowed: Sequence[str]) -> None:
    """`media`: a Content-Type's media type, lower case, without its parameters."""
    if media not in allowed:
        raise Problem(
            415,
            "Unsupported Media Type",
            f"Content-Type must be one of {', '.join(allowed)}; got {media or 'none'!r}",
        )


async def read_body(
    receive: Receive, *, content_length: str | None, limit: int, timeout_s: float
) -> bytes:
    """The whole body, refused as soon as it is known to be over `limit` or too slow.

    Reads the ASGI messages itself (no stream generator): a small body is one message.
    """
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk: bytes = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise Problem(
            408, "Request Timeout", f"the body was not received within {timeout_s:g} s"
        ) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> Problem:
    return Problem(413, "Content Too Large", f"the body is larger than {limit} bytes")


def parse_json(body: bytes) -> Any:
    if not body:
        raise Problem(400, "Bad Request", "the body is empty; expected JSON")
    try:
        return pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise Problem(400, "Bad Request", f"the body is not valid JSON: {exc}") from None


def parse_valid_body(body: bytes, *, batch: bool, max_events: int) -> list[Incoming] | None:
    """The events of a body whose every event is valid (the fast paths); None for any other
    body, whose refusal then comes from `parse_json` and `parse_batch` / `parse_event`."""
    if batch:
        accepted = accept_batch_json(body)
        if accepted is None:
            events = parse_incoming_batch_json(body)
            accepted = None if events is None else [incoming(e) for e in events]
        if accepted is not None:
            check_batch_length(len(accepted), max_events)
        return accepted
    one = accept_json(body)
    if one is None:
        event = parse_incoming_json(body)
        one = None if event is None else incoming(event)
    return None if one is None else [one]


def check_batch_length(length: int, max_events: int) -> None:
    if not length:
        raise Problem(422, "Invalid batch", "the batch is empty")
    if length > max_events:
        raise Problem(
            422,
            "Invalid batch",
            f"the batch has {length} events; at most {max_events} are accepted per request",
        )


def parse_event(obj: Any) -> Event:
    try:
        return parse_incoming(obj)
    except ValidationError as exc:
        errors = describe(exc)
        raise Problem(422, "Invalid event", _summary(errors), errors=errors) from None


def parse_batch(obj: Any, *, max_events: int) -> list[Event]:
    if not isinstance(obj, list):
        raise Problem(422, "Invalid batch", "the body must be a JSON array of events")
    check_batch_length(len(obj), max_events)
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(obj):
        try:
            events.append(parse_incoming(item))
        except ValidationError as exc:
            errors.extend({"index": index, **e} for e in describe(exc))
    if errors:
        bad = sorted({int(e["index"]) for e in errors})
        raise Problem(
            422,
            "Invalid batch",
            f"{len(bad)} of {len(obj)} events are invalid (indexes {bad[:20]}); "
            "nothing was published",
            errors=errors,
        )
    return events


def describe(exc: ValidationError) -> list[dict[str, Any]]:
    """Errors as `{field, message, type}`; the union's tag is dropped from the path."""
    out: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [part for part in error["loc"] if part not in EVENT_TYPES]
        out.append(
            {
                "field": field_path(loc) or "(event)",
                "message": error["msg"],
                "type": error["type"],
            }
        )
    return out


def _summary(errors: Sequence[dict[str, Any]]) -> str:
    fields = ", ".join(dict.fromkeys(str(e["field"]) for e in errors))
    return f"invalid value for: {fields}"
