"""CloudEvents' HTTP binary content mode: the attributes in `ce-*` headers, the data as the body.

A request is in binary mode when its Content-Type is not a CloudEvents media type
(`application/cloudevents...`) and it carries at least one `ce-` header; the HTTP binding
says so, with one difference kept for earlier clients: `application/json` without any `ce-`
header is a structured event, as it always was here.

The headers and the body become the same JSON object a structured request carries, which
then takes the structured path (same validation, idempotency, answers). What binary mode
adds are its own refusals, each naming the header:

- a value is decoded as the binding says (a double-quoted string unescaped, then one round
  of percent-decoding, then UTF-8), and a value that does not decode is refused;
- `ce-datacontenttype` must not be sent (the data's media type is the Content-Type);
- a header given twice is refused (which of the two would be the attribute?).

Content-Type is `datacontenttype`: Chancery's events carry `application/json` (415 for any
other); absent, the data is JSON, as an absent `datacontenttype` means in structured mode.
Errors about an attribute name its header (`ce-type`); errors inside the data name the
field as structured mode does (`data.actor1`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from services.platform.web import Problem

PREFIX = b"ce-"
REQUIRED = ("specversion", "id", "source", "type", "time")
DATA_MEDIA_TYPE = "application/json"
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
# Printable US-ASCII. Spaces too: the binding's earlier versions did not have them encoded.
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")


def is_binary(media: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True for a binary-mode request: not a CloudEvents media type, and a `ce-` header."""
    if media.startswith("application/cloudevents"):
        return False
    return any(name[:3] == PREFIX for name, _ in headers)


def check_media_type(media: str) -> None:
    """The data's media type (Content-Type, parameters left out): JSON or absent."""
    if media not in ("", DATA_MEDIA_TYPE):
        raise Problem(
            415,
            "Unsupported Media Type",
            "in binary mode, Content-Type is the event's datacontenttype and must be "
            f"{DATA_MEDIA_TYPE} (or absent); got {media!r}",
        )


def attributes(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The attributes the `ce-*` headers carry, decoded; 422 naming every bad header."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    errors: list[dict[str, Any]] = []
    for raw_name, raw_value in headers:
        if raw_name[:3] != PREFIX:
            continue
        header = raw_name.decode("latin-1").lower()
        name = header[3:]
        if name in seen:
            errors.append(_error(header, "duplicate", f"{header} is given more than once"))
            continue
        seen.add(name)
        if name == "datacontenttype":
            errors.append(
                _error(
                    header,
                    "binary_datacontenttype",
                    "in binary mode the data's media type is the Content-Type header; "
                    "ce-datacontenttype must not be sent",
                )
            )
            continue
        if name == "data":
            errors.append(_error(header, "binary_data", "in binary mode the data is the body"))
            continue
        try:
            found[name] = decode_value(raw_value)
        except ValueError as exc:
            errors.append(_error(header, "header_encoding", str(exc)))
    errors += [
        _error(f"ce-{name}", "missing", f"the ce-{name} header is required in binary mode")
        for name in REQUIRED
        if name not in seen
    ]
    if errors:
        raise Problem(422, "Invalid event", _summary(errors), errors=errors)
    return found


def decode_value(raw: bytes) -> str:
    """A header value as the HTTP binding decodes it: a quoted string unescaped (RFC 9110
    quoted-string), then one round of percent-decoding, then UTF-8. `ValueError` names what
    is wrong."""
    value = raw.strip(b" \t")
    if value[:1] == b'"':
        value = _unquoted(value)
    if not _PRINTABLE.fullmatch(value):
        raise ValueError(
            "a header value is printable US-ASCII; other characters are percent-encoded as "
            "UTF-8 (%XX)"
        )
    if b"%" in value:
        if value.count(b"%") != len(_PERCENT.findall(value)):
            raise ValueError("'%' must start a percent-encoded byte (%XX)")
        value = _PERCENT.sub(lambda m: bytes((int(m[1], 16),)), value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the percent-encoded bytes are not UTF-8") from None


def _unquoted(value: bytes) -> bytes:
    if len(value) < 2 or value[-1:] != b'"':
        raise ValueError("a double-quoted value has no closing quote")
    out = bytearray()
    inner = value[1:-1]
    i = 0
    while i < len(inner):
        byte = inner[i]
        if byte == 0x5C:  # backslash: the next character stands for itself
            i += 1
            if i == len(inner):
                raise ValueError("a double-quoted value ends with a lone backslash")
            byte = inner[i]
        elif byte == 0x22:
            raise ValueError("a double-quoted value has an unescaped quote inside")
        out.append(byte)
        i += 1
    return bytes(out)


def structured(attrs: dict[str, str], data: Any, media: str) -> dict[str, Any]:
    """The structured event these attributes and data make (attribute order as a client's)."""
    event: dict[str, Any] = dict(attrs)
    if media:
        event["datacontenttype"] = media
    event["data"] = data
    return event


def header_fields(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors of the structured path, each attribute named by its header (`type` ->
    `ce-type`); errors inside the data keep their field (`data.actor1`)."""
    out = []
    for error in errors:
        field = str(error.get("field", ""))
        head = re.split(r"[.\[]", field, maxsplit=1)[0]
        attribute = field and head not in ("data", "(event)") and not field.startswith("ce-")
        out.append({**error, "field": f"ce-{field}"} if attribute else error)
    return out


def renamed(problem: Problem) -> Problem:
    """`problem`, with the attributes its errors name written as headers."""
    if not problem.errors:
        return problem
    errors = header_fields([dict(e) for e in problem.errors])
    detail = _summary(errors) if problem.detail.startswith("invalid value for:") else problem.detail
    return Problem(problem.status, problem.title, detail, errors, problem.headers)


def _error(header: str, kind: str, message: str) -> dict[str, Any]:
    return {"field": header, "message": message, "type": kind}


def _summary(errors: Sequence[dict[str, Any]]) -> str:
    fields = ", ".join(dict.fromkeys(str(e["field"]) for e in errors))
    return f"invalid value for: {fields}"
