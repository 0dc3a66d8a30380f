"""How a read-model answer leaves the API: JSON body, position headers, ETag, 304.

Every response built here carries:
- `Chancery-Position`: the position token the answer reflects (the applied offset of every
  partition, the same format ingest returns), also as `position` in the body;
- `Chancery-Lag`: events in the log not yet applied when the answer was read (over all
  partitions);
- `Chancery-Read-Model-Version`: the read-model version that answered;
- a weak `ETag` over the body without `position`, so a client that revalidates with
  `If-None-Match` gets 304 Not Modified while what it asked about is unchanged, even as other
  events move the log on. Weak, because the representation is equivalent, not byte-equal:
  the position in a 304 is newer than the one in the client's copy (the headers say which).
"""

from __future__ import annotations

import functools
import hashlib
import json

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from .reader import Snapshot

POSITION_HEADER = "Chancery-Position"
LAG_HEADER = "Chancery-Lag"
VERSION_HEADER = "Chancery-Read-Model-Version"
MIN_POSITION_HEADER = "Chancery-Min-Position"
EXPOSED_HEADERS = (POSITION_HEADER, LAG_HEADER, VERSION_HEADER, "ETag", "Retry-After")

CACHE_CONTROL = "private, no-cache"


def position_headers(snapshot: Snapshot) -> dict[str, str]:
    return {
        POSITION_HEADER: snapshot.token,
        LAG_HEADER: str(snapshot.lag),
        VERSION_HEADER: str(snapshot.version),
    }


def etag_of(payload: bytes) -> str:
    return 'W/"' + hashlib.blake2b(payload, digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2), as If-None-Match requires."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


def payload_of(body: BaseModel) -> bytes:
    """The body as JSON without `position` (what the ETag covers and a cache keeps)."""
    return body.model_dump_json(exclude={"position"}).encode()


def represent(request: Request, body: BaseModel, snapshot: Snapshot) -> Response:
    """The body as JSON with `position` first, its ETag, or 304 if the client has it."""
    payload = payload_of(body)
    return _respond(request, payload, etag_of(payload), snapshot)


def represent_payload(request: Request, payload: bytes, snapshot: Snapshot) -> Response:
    """`represent` for a payload the body cache serves again and again (the relation): its
    ETag is kept with it, so a repeat costs a lookup, not a digest (the cache hands out the
    same bytes object, whose hash Python keeps)."""
    return _respond(request, payload, _kept_etag(payload), snapshot)


KEPT = 4096


@functools.lru_cache(maxsize=KEPT)
def _kept_etag(payload: bytes) -> str:
    return etag_of(payload)


@functools.lru_cache(maxsize=KEPT)
def _json_string(token: str) -> bytes:
    """The token as a JSON string, kept (a run of answers shares one snapshot's token)."""
    return json.dumps(token).encode()


def _respond(request: Request, payload: bytes, etag: str, snapshot: Snapshot) -> Response:
    token = snapshot.token
    headers = {
        POSITION_HEADER: token,
        LAG_HEADER: str(snapshot.lag),
        VERSION_HEADER: str(snapshot.version),
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
    }
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    spliced = (
        b'{"position":' + _json_string(token) + (b"," + payload[1:] if payload != b"{}" else b"}")
    )
    return Response(spliced, media_type="application/json", headers=headers)
