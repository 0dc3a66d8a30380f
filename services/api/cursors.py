"""Opaque page cursors: base64url of a small JSON object, tagged with what it pages.

A cursor says where the previous page ended (keyset pagination: the last item's sort key),
never an offset, so pages stay consistent while events keep arriving: nothing is skipped or
repeated because items were inserted before the cursor. Clients treat it as opaque; a
cursor from another listing, or one tampered with, is a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .params import invalid

MAX_CURSOR_LENGTH = 2048


def encode(kind: str, **fields: Any) -> str:
    raw = json.dumps({"k": kind, **fields}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str | None, kind: str) -> dict[str, Any] | None:
    """The cursor's fields, or None for no cursor; 422 if it is not one of `kind`."""
    if cursor is None or cursor == "":
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid("cursor", "the cursor is too long", "cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid("cursor", "not a cursor this API issued", "cursor") from None
    if not isinstance(fields, dict) or fields.get("k") != kind:
        raise invalid("cursor", f"not a cursor of this listing ({kind})", "cursor")
    fields.pop("k")
    return fields


def text_field(fields: dict[str, Any] | None, name: str) -> str | None:
    """A string field of a decoded cursor (422 if absent or of another type)."""
    if fields is None:
        return None
    value = fields.get(name)
    if not isinstance(value, str) or not value or "\n" in value:
        raise invalid("cursor", "not a cursor this API issued", "cursor")
    return value


def resume_after(cursor: str | None, kind: str, query_id: str, *, other: str) -> str | None:
    """Where the next page of the listing `query_id` starts: after its cursor's `m` (None
    without a cursor). A cursor of the same kind but another query is a 422 saying it
    belongs to another `other` (a filter or order changed between pages)."""
    fields = decode(cursor, kind)
    if fields is None:
        return None
    if fields.get("q") != query_id:
        raise invalid("cursor", f"the cursor belongs to another {other}", "cursor")
    return text_field(fields, "m")
