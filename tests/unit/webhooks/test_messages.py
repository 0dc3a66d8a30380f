"""Webhook requests: the CloudEvents HTTP binding's two modes, and Standard Webhooks signing
(checked against the reference library and the specification's own test vector)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks import Webhook

from chancery.contract import EVENT_TYPES, encode_event, stamp
from chancery.subscriptions import new_secret, secret_bytes, webhook_id
from services.webhooks.messages import message_of, signature, signed_headers
from tests.unit.contract.examples import example_event

pytestmark = pytest.mark.unit

RECORDED = datetime(2023, 5, 27, 8, 0, 1, 123456, tzinfo=UTC)


def _logged(name: str) -> bytes:
    return encode_event(stamp(example_event(name), recorded_at=RECORDED, partition_key="CHN|USA"))


def test_the_specification_test_vector() -> None:
    # standard-webhooks' own libraries test with this secret, id, timestamp and payload.
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signed = signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("mode", ["structured", "binary"])
@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_event_verifies_and_reads_back_as_itself(name: str, mode: str) -> None:
    raw = _logged(name)
    event = example_event(name)
    secret = new_secret()
    message = message_of(raw, event.key, mode)  # type: ignore[arg-type]
    now = int(datetime.now(UTC).timestamp())
    headers = signed_headers(message, secret_bytes(secret), now)
    assert headers["webhook-id"] == webhook_id(event.key) == f"evt_{event.key}"
    Webhook(secret).verify(message.body, headers)  # raises if not
    read = from_http_event(HTTPMessage(dict(headers), message.body))
    logged = json.loads(raw)
    assert read.get_id() == logged["id"]
    assert read.get_type() == logged["type"]
    assert read.get_source() == logged["source"]
    assert read.get_extension("partitionkey") == "CHN|USA"
    assert read.get_data() == logged["data"]
    if mode == "structured":
        assert message.body == raw  # the log's bytes, untouched
        assert headers["content-type"] == "application/cloudevents+json"
    else:
        assert raw.endswith(message.body + b"}")  # cut out of the log's bytes
        assert headers["ce-recordedtime"] == logged["recordedtime"]
        assert headers["content-type"] == "application/json"


def test_header_values_are_percent_encoded_where_the_binding_asks() -> None:
    event = example_event("diplomacy.meeting.held").model_copy(
        update={"source": "https://example.org/a%20b"}
    )
    raw = encode_event(event)
    message = message_of(raw, event.key, "binary")
    assert message.headers["ce-source"] == "https://example.org/a%2520b"
    read = from_http_event(HTTPMessage(dict(message.headers), message.body))
    assert read.get_source() == "https://example.org/a%20b"


def test_a_secret_is_standard_webhooks_shaped() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert 24 <= len(secret_bytes(secret)) <= 64
    assert new_secret() != secret
