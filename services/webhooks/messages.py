"""One event as one webhook request: the CloudEvents HTTP binding, signed as Standard Webhooks.

- **Structured** (the default): the body is the event exactly as the log holds it (the
  record's bytes), `Content-Type: application/cloudevents+json`.
- **Binary**: every attribute but `data` in a `ce-<name>` header (extensions included:
  `ce-recordedtime`, `ce-partitionkey`), `datacontenttype` as `Content-Type`, and the body
  is the `data` member as the log holds it (its bytes, cut out of the record, not encoded
  again). Header values are percent-encoded where the binding asks (space, `"`, `%`, and
  anything outside printable ASCII).

Both carry the Standard Webhooks headers, made per attempt by `signed_headers`:
`webhook-id` (`evt_<identity digest>`: the same on every retry and redelivery, the key a
receiver dedupes by), `webhook-timestamp` (the attempt's Unix time) and `webhook-signature`
(`v1,<base64 of HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}">`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chancery.contract import RECORD_CONTENT_TYPE
from chancery.subscriptions import ContentMode, webhook_id

USER_AGENT = "Chancery-Webhooks/1"
_DATA_MEMBER = b',"data":'
# CloudEvents HTTP binding 3.1.3.2: what a header value must percent-encode.
_PLAIN = frozenset(range(0x21, 0x7F)) - {0x22, 0x25}


@dataclass(frozen=True)
class WebhookMessage:
    """What is sent for one event, whatever the attempt: the id, the body, its headers."""

    webhook_id: str
    body: bytes
    headers: Mapping[str, str]


def message_of(raw: bytes, event_key: str, mode: ContentMode) -> WebhookMessage:
    """The request for the event whose log record holds `raw` (its identity digest is
    `event_key`)."""
    msg_id = webhook_id(event_key)
    if mode == "structured":
        return WebhookMessage(msg_id, raw, {"content-type": RECORD_CONTENT_TYPE})
    envelope: dict[str, Any] = json.loads(raw)
    data = envelope.pop("data", None)
    content_type = str(envelope.pop("datacontenttype", "application/json"))
    headers = {f"ce-{name}": _header_value(value) for name, value in envelope.items()}
    headers["content-type"] = content_type
    return WebhookMessage(msg_id, _data_bytes(raw, data), headers)


def _header_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    encoded = text.encode()
    if all(b in _PLAIN for b in encoded):
        return text
    return "".join(chr(b) if b in _PLAIN else f"%{b:02X}" for b in encoded)


def _data_bytes(raw: bytes, data: object) -> bytes:
    """The bytes of the top-level `data` member of `raw`. The canonical encoding writes it
    last, and no attribute before it holds an object or an escaped quote, so its first
    `,"data":` is the member; the cut is checked against the parsed value all the same."""
    at = raw.find(_DATA_MEMBER)
    if at >= 0 and raw.endswith(b"}"):
        cut = raw[at + len(_DATA_MEMBER) : -1]
        try:
            if json.loads(cut) == data:
                return cut
        except ValueError:
            pass
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">` (Standard Webhooks)."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    return "v1," + base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()


def signed_headers(message: WebhookMessage, key: bytes, timestamp: int) -> dict[str, str]:
    """The headers of one attempt at `message`, signed with `key` at `timestamp`."""
    return {
        **message.headers,
        "user-agent": USER_AGENT,
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message.webhook_id, timestamp, message.body),
    }
