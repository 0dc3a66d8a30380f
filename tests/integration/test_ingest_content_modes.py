"""The official CloudEvents SDK as ingest's client, against the real Kafka and Redis.

Binary and structured mode each give 202, a resubmission the same answer, and the topic
holds each event once; a bad `ce-type` is a 422 naming it, and nothing is appended.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent

from tests.integration.test_ingest import ids_in, ingest, read_topic  # noqa: F401 (fixture)
from tests.unit.ingest.support import make_event

pytestmark = pytest.mark.integration


def sdk_event(event: dict[str, Any]) -> CloudEvent:
    return CloudEvent({k: v for k, v in event.items() if k != "data"}, event["data"])


@pytest.mark.parametrize("to_http", [to_binary, to_structured], ids=["binary", "structured"])
async def test_the_sdk_posts_once_and_a_resubmission_gets_the_same_answer(
    ingest: httpx.AsyncClient,  # noqa: F811
    kafka_bootstrap: str,
    kafka_topic: str,
    to_http: Any,
) -> None:
    event = make_event("diplomacy.meeting.held", f"sdk-{to_http.__name__}")
    headers, body = to_http(sdk_event(event))

    first = await ingest.post("/v1/events", headers=headers, content=body)
    again = await ingest.post("/v1/events", headers=headers, content=body)

    assert first.status_code == again.status_code == 202, first.text
    assert again.content == first.content
    assert ids_in(await read_topic(kafka_bootstrap, kafka_topic)) == [event["id"]]


async def test_a_binary_event_with_a_bad_ce_type_is_refused_naming_it(
    ingest: httpx.AsyncClient,  # noqa: F811
    kafka_bootstrap: str,
    kafka_topic: str,
) -> None:
    headers, body = to_binary(sdk_event(make_event(id_="sdk-bad", type="diplomacy.x.y")))

    refused = await ingest.post("/v1/events", headers=headers, content=body)

    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["ce-type"]
    assert await read_topic(kafka_bootstrap, kafka_topic) == []
