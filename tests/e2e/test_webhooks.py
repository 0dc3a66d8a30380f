"""Webhooks end to end: ingest -> Kafka -> `chancery deliver` -> a real receiver.

Every matching event arrives, signed (checked with the reference `standardwebhooks`
library) and a valid CloudEvent (the official SDK parses it), in both content modes; a
receiver down for a while gets everything afterwards in per-subject order; a receiver
answering 500 gets the subscription paused, with why in its deliveries; the worker
SIGKILLed mid-stream and restarted misses nothing and repeats only with the same
`webhook-id`; a target inside the network is refused with 422.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from chancery.contract import event_key
from tests.servers import _Databases

from .webhooks import (
    WebhookStack,
    WorkerProcess,
    meeting,
    receiving,
    webhook_id_of,
    webhook_stack,
    worker,
)

pytestmark = pytest.mark.e2e

PAIRS = [("CHN", "USA"), ("FRA", "DEU"), ("CHN", "RUS"), ("BRA", "ARG"), ("IND", "CHN")]
OUTAGE_S = 5.0
"""How long the receiver is down in `make test` (the reliability suite's variant: 30 s)."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hooks(kafka_bootstrap: str, _redis_databases: _Databases) -> AsyncIterator[WebhookStack]:
    async with webhook_stack(kafka_bootstrap, _redis_databases.take()) as stack:
        yield stack


def _events(tag: str, count: int) -> list[dict[str, Any]]:
    return [meeting(tag, i, *PAIRS[i % len(PAIRS)]) for i in range(count)]


def _involves(event: dict[str, Any], country: str) -> bool:
    return country in event["data"]["parties"]


async def test_every_matching_event_is_delivered_signed_as_in_the_log(
    hooks: WebhookStack,
) -> None:
    async with receiving() as receiver:
        created = await hooks.subscribe(receiver.url, filters={"country": ["chn"]})
        receiver.secret = created["secret"]
        assert created["secret"].startswith("whsec_")
        assert created["filters"]["country"] == ["CHN"]
        assert created["mode"] == "structured"
        events = _events("signed", 40)
        wanted = {webhook_id_of(e) for e in events if _involves(e, "CHN")}
        async with worker(hooks.deliver_settings()):
            await hooks.post(events)
            await receiver.until_delivered(wanted, 60)
            await asyncio.sleep(0.5)  # anything not chosen would have come by now
        assert receiver.problems == []
        assert receiver.delivered_ids() == wanted  # all of them, and only them
        in_log = await hooks.log_records()
        by_id = {webhook_id_of(e): e for e in events}
        for request in receiver.delivered():
            event = by_id[request.webhook_id]
            assert request.headers["content-type"] == "application/cloudevents+json"
            assert request.body == in_log[request.webhook_id]  # the event as the log holds it
            assert request.event_id == event["id"]
            assert request.webhook_id == "evt_" + event_key(event["source"], event["id"])
            assert int(request.headers["webhook-timestamp"]) == pytest.approx(request.at, abs=5)
        view = await hooks.subscription(created["id"])
        assert view["state"] == "active"
        attempts = await hooks.deliveries(created["id"])
        assert {a["webhook_id"] for a in attempts} <= wanted
        assert all(a["outcome"] == "delivered" and a["status"] == 200 for a in attempts)
        assert all(a["latency_ms"] >= 0 and a["attempt"] == 1 for a in attempts)
        await hooks.owner.delete(f"/v1/subscriptions/{created['id']}")


async def test_binary_mode_carries_the_attributes_in_headers(hooks: WebhookStack) -> None:
    async with receiving() as receiver:
        created = await hooks.subscribe(receiver.url, filters={"pair": ["FRA-DEU"]}, mode="binary")
        receiver.secret = created["secret"]
        events = _events("binary", 10)
        wanted = {webhook_id_of(e) for e in events if set(e["data"]["parties"]) == {"FRA", "DEU"}}
        assert wanted
        async with worker(hooks.deliver_settings()):
            await hooks.post(events)
            await receiver.until_delivered(wanted, 60)
        assert receiver.problems == []
        for request in receiver.delivered():
            assert request.headers["content-type"] == "application/json"
            assert request.headers["ce-specversion"] == "1.0"
            assert request.headers["ce-type"] == "diplomacy.meeting.held"
            assert request.headers["ce-source"] == "https://wire.example/webhooks"
            assert "ce-recordedtime" in request.headers
            assert request.headers["ce-partitionkey"] == "DEU|FRA"
            data = json.loads(request.body)
            assert data["parties"] == ["FRA", "DEU"]
            assert request.event is not None
            assert request.event.get_data() == data
            assert request.event.get_extension("partitionkey") == "DEU|FRA"
        await hooks.owner.delete(f"/v1/subscriptions/{created['id']}")


async def outage_then_recovery(hooks: WebhookStack, outage_s: float, count: int) -> None:
    """The receiver down for `outage_s` while events arrive, then up: everything arrives,
    each subject's events in log order, nothing missing."""
    async with receiving() as receiver:
        created = await hooks.subscribe(receiver.url)
        receiver.secret = created["secret"]
        settings = hooks.deliver_settings(deliver_max_attempts=10_000, deliver_backoff_max_s=1.0)
        events = _events(f"outage-{outage_s:g}", count)
        wanted = [webhook_id_of(e) for e in events]
        async with worker(settings):
            await receiver.stop()
            await hooks.post(events)
            await asyncio.sleep(outage_s)
            failing = await hooks.subscription(created["id"])
            assert failing["state"] == "active"
            assert failing["last_error"].startswith("connection failed")
            assert failing["failing_since"] is not None
            await receiver.start()
            await receiver.until_delivered(set(wanted), 60 + outage_s)
        assert receiver.problems == []
        assert receiver.delivered_ids() == set(wanted)
        # Per subject (the pair), the first delivery of each event follows the log's order,
        # which for one subject is the order posted.
        first: dict[str, float] = {}
        for n, request in enumerate(receiver.delivered()):
            first.setdefault(request.webhook_id, n)
        for pair in PAIRS:
            subject = [webhook_id_of(e) for e in events if tuple(e["data"]["parties"]) == pair]
            assert [first[w] for w in subject] == sorted(first[w] for w in subject), pair
        recovered = await hooks.subscription(created["id"])
        assert recovered["state"] == "active"
        assert recovered["failing_since"] is None
        await hooks.owner.delete(f"/v1/subscriptions/{created['id']}")


async def test_receiver_down_then_up_gets_everything_in_order(hooks: WebhookStack) -> None:
    await outage_then_recovery(hooks, OUTAGE_S, 60)


async def test_a_receiver_failing_forever_pauses_the_subscription(hooks: WebhookStack) -> None:
    async with receiving() as receiver:
        receiver.status = 500
        created = await hooks.subscribe(receiver.url, filters={"pair": ["CHN-USA"]})
        settings = hooks.deliver_settings(deliver_max_attempts=4)
        async with worker(settings):
            await hooks.post(_events("failing", 5))
            async with asyncio.timeout(60):
                while True:
                    if (await hooks.subscription(created["id"]))["state"] == "paused":
                        break
                    await asyncio.sleep(0.1)
        paused = await hooks.subscription(created["id"])
        assert "4 attempts at one event failed" in paused["reason"]
        assert paused["last_error"].startswith("HTTP 500")
        attempts = await hooks.deliveries(created["id"])
        assert [a["attempt"] for a in attempts[:4]] == [4, 3, 2, 1]  # newest first
        assert all(a["status"] == 500 and a["outcome"] == "failed" for a in attempts)
        assert "the receiver is failing" in attempts[0]["error"]
        assert len({a["webhook_id"] for a in attempts}) == 1  # per-subject order: one at a time
        # Resumed against a receiver that works again: from where it stopped, nothing skipped.
        receiver.status = 200
        receiver.secret = created["secret"]
        resumed = await hooks.owner.post(f"/v1/subscriptions/{created['id']}/resume")
        assert resumed.status_code == 200
        assert resumed.json()["state"] == "active"
        wanted = {
            webhook_id_of(e)
            for e in _events("failing", 5)
            if tuple(e["data"]["parties"]) == ("CHN", "USA")
        }
        async with worker(settings):
            await receiver.until_delivered(wanted, 60)
        await hooks.owner.delete(f"/v1/subscriptions/{created['id']}")


async def test_sigkill_mid_stream_misses_nothing(hooks: WebhookStack, tmp_path: Path) -> None:
    async with receiving() as receiver:
        receiver.delay_s = 0.002
        created = await hooks.subscribe(receiver.url)
        receiver.secret = created["secret"]
        events = _events("sigkill", 1500)
        wanted = {webhook_id_of(e) for e in events}
        process = WorkerProcess(
            hooks.deliver_settings(deliver_concurrency=4), tmp_path / "deliver.log"
        ).start()
        try:
            for start in range(0, len(events), 500):
                await hooks.post(events[start : start + 500])
            async with asyncio.timeout(60):
                while len(receiver.delivered_ids()) < 300:
                    process.alive()
                    await asyncio.sleep(0.01)
            process.kill()
            at_kill = len(receiver.delivered_ids())
            assert at_kill < len(wanted), "the kill came after the end"
            process.start()
            await receiver.until_delivered(wanted, 120)
        finally:
            process.stop()
        assert receiver.problems == []
        assert receiver.delivered_ids() == wanted
        # A duplicate is the same event again: one body per webhook-id, whatever the attempt.
        assert all(len(bodies) == 1 for bodies in receiver.bodies_by_id().values())
        await hooks.owner.delete(f"/v1/subscriptions/{created['id']}")


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/", "http://10.0.0.1/", "http://[fd00::1]/", "http://0.0.0.0:80/"],
)
async def test_targets_inside_the_network_are_refused(hooks: WebhookStack, url: str) -> None:
    response = await hooks.owner.post("/v1/subscriptions", json={"url": url})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["errors"][0]["field"] == "url"
    assert "refused" in problem["detail"]


async def test_managing_subscriptions(hooks: WebhookStack) -> None:
    created = await hooks.subscribe(
        "http://127.0.0.1:9/hook",
        filters={"type": ["meeting.held"], "person": ["li-hui"], "pair": ["usa|chn"]},
        after=f"{hooks.topic}@",
    )
    sid = created["id"]
    assert created["filters"] == {
        "type": ["diplomacy.meeting.held"],
        "country": [],
        "pair": ["CHN-USA"],
        "person": ["li-hui"],
    }
    assert created["start"] == f"{hooks.topic}@"
    listed = (await hooks.owner.get("/v1/subscriptions")).json()["subscriptions"]
    assert sid in {s["id"] for s in listed}
    assert all("secret" not in s for s in listed)
    assert "secret" not in await hooks.subscription(sid)
    paused = await hooks.owner.post(f"/v1/subscriptions/{sid}/pause")
    assert paused.json()["state"] == "paused"
    assert "hooks-owner" in paused.json()["reason"]
    resumed = await hooks.owner.post(f"/v1/subscriptions/{sid}/resume")
    assert resumed.json()["state"] == "active"
    assert resumed.json()["reason"] is None
    assert (await hooks.owner.delete(f"/v1/subscriptions/{sid}")).status_code == 204
    gone = await hooks.owner.get(f"/v1/subscriptions/{sid}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert (await hooks.owner.delete(f"/v1/subscriptions/{sid}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:9/", "filters": {"country": ["XXX"]}}, "filters.country"),
        ({"url": "http://127.0.0.1:9/", "filters": {"type": ["nope"]}}, "filters.type"),
        ({"url": "http://127.0.0.1:9/", "filters": {"pair": ["CHN"]}}, "filters.pair"),
        ({"url": "http://127.0.0.1:9/", "filters": {"person": ["Li Hui"]}}, "filters.person"),
        ({"url": "http://127.0.0.1:9/", "after": "elsewhere@0:1"}, "after"),
        ({"url": "http://127.0.0.1:9/", "mode": "batched"}, "body.mode"),
        ({"url": "ftp://127.0.0.1/"}, "url"),
        ({"url": "http://127.0.0.1:9/", "colour": "red"}, "body.colour"),
        ({}, "body.url"),
    ],
)
async def test_bad_input_gets_422_naming_the_field(
    hooks: WebhookStack, body: dict[str, Any], field: str
) -> None:
    response = await hooks.owner.post("/v1/subscriptions", json=body)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}


async def test_subscriptions_need_their_scope(hooks: WebhookStack) -> None:
    async with httpx.AsyncClient(base_url=hooks.api_url, timeout=10) as anonymous:
        assert (await anonymous.get("/v1/subscriptions")).status_code == 401
        reader = {"Authorization": f"Bearer {hooks.reader_key}"}
        assert (await anonymous.get("/v1/subscriptions", headers=reader)).status_code == 403
        created = await anonymous.post(
            "/v1/subscriptions", json={"url": "http://127.0.0.1:9/"}, headers=reader
        )
        assert created.status_code == 403
