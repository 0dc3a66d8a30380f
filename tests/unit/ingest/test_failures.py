"""When the log or the idempotency store fail, or two requests race: no 2xx for what is not
written, nothing acknowledged forgotten, nothing appended twice."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chancery.observability import correlation_id
from tests.twins.ingest import InMemoryEventPublisher, InMemoryIdempotencyStore

from .support import Credentials, credentials, ingest_client, make_event

pytestmark = pytest.mark.unit


@pytest.fixture
def creds() -> Credentials:
    return credentials()


def batch(prefix: str, n: int) -> list[dict[str, object]]:
    return [make_event(id_=f"{prefix}-{i}") for i in range(n)]


async def test_kafka_down_is_503_with_retry_after_and_claims_released(creds: Credentials) -> None:
    publisher = InMemoryEventPublisher(available=False)
    store = InMemoryIdempotencyStore()
    async with ingest_client(publisher, store, creds) as client:
        down = await client.post("/v1/events/batch", json=batch("k", 3))

        assert down.status_code == 503
        assert down.headers["Retry-After"] == "2"
        assert "retry the same request" in down.json()["detail"]
        assert store.records == {}

        publisher.available = True
        up = await client.post("/v1/events/batch", json=batch("k", 3))
        assert up.status_code == 202
        assert len(publisher.records()) == 3


async def test_a_partial_publish_is_503_and_the_retry_appends_only_the_rest(
    creds: Credentials,
) -> None:
    publisher = InMemoryEventPublisher(fail_after=2)
    store = InMemoryIdempotencyStore()
    async with ingest_client(publisher, store, creds) as client:
        events = batch("p", 5)
        first = await client.post("/v1/events/batch", json=events)

        assert first.status_code == 503
        assert len(publisher.records()) == 2  # in the log, and remembered
        assert sorted(r.state for r in store.records.values()) == ["done", "done"]

        retry = await client.post("/v1/events/batch", json=events)

        assert retry.status_code == 202
        assert len(publisher.records()) == 5
        again = await client.post("/v1/events/batch", json=events)
        assert again.content == retry.content


async def test_an_unknown_outcome_keeps_the_claim_until_the_log_answers(
    creds: Credentials,
) -> None:
    publisher = InMemoryEventPublisher(hold=True)
    store = InMemoryIdempotencyStore()
    async with ingest_client(publisher, store, creds, publish_timeout_s=0.3) as client:
        event = make_event(id_="u-1")
        first = await client.post("/v1/events", json=event)
        assert first.status_code == 503
        (record,) = store.records.values()
        assert record.state == "pending"

        # A retry while the outcome is unknown waits (bounded) and does not publish again.
        retry = await client.post("/v1/events", json=event)
        assert retry.status_code == 503
        assert "being written by another request" in retry.json()["detail"]
        assert publisher.calls == 1

        publisher.release_held(written=True)  # Kafka comes back: the held record lands
        for _ in range(50):
            if next(iter(store.records.values())).state == "done":
                break
            await asyncio.sleep(0.02)
        publisher.hold = False
        done = await client.post("/v1/events", json=event)

        assert done.status_code == 202
        assert len(publisher.records()) == 1
        assert publisher.calls == 1


async def test_an_unknown_outcome_that_fails_releases_the_claim(creds: Credentials) -> None:
    publisher = InMemoryEventPublisher(hold=True)
    store = InMemoryIdempotencyStore()
    async with ingest_client(publisher, store, creds, publish_timeout_s=0.3) as client:
        event = make_event(id_="u-2")
        assert (await client.post("/v1/events", json=event)).status_code == 503

        publisher.release_held(written=False)
        for _ in range(50):
            if not store.records:
                break
            await asyncio.sleep(0.02)
        assert store.records == {}
        publisher.hold = False
        assert (await client.post("/v1/events", json=event)).status_code == 202
        assert len(publisher.records()) == 1


async def test_claims_of_unknown_outcome_are_kept_alive(creds: Credentials) -> None:
    publisher = InMemoryEventPublisher(hold=True)
    store = InMemoryIdempotencyStore()
    async with ingest_client(publisher, store, creds, publish_timeout_s=0.15) as client:
        assert (await client.post("/v1/events", json=make_event(id_="u-3"))).status_code == 503
        await asyncio.sleep(0.5)  # the pending lifetime is 0.3 s: extended every 0.1 s
        assert store.extended >= 2
        publisher.release_held()


async def test_redis_down_is_503_and_publishes_nothing(creds: Credentials) -> None:
    publisher = InMemoryEventPublisher()
    store = InMemoryIdempotencyStore(available=False)
    async with ingest_client(publisher, store, creds) as client:
        response = await client.post("/v1/events", json=make_event())

        assert response.status_code == 503
        assert "idempotency store unavailable" in response.json()["detail"]
        assert response.headers["Retry-After"] == "2"
        assert publisher.calls == 0
        assert (await client.get("/readyz")).status_code == 503


async def test_two_requests_with_the_same_event_append_it_once(creds: Credentials) -> None:
    publisher = InMemoryEventPublisher(delay_s=0.1)
    store = InMemoryIdempotencyStore()
    async with ingest_client(publisher, store, creds) as client:
        events = batch("race", 3)
        overlapping = [*events[1:], make_event(id_="race-x")]

        a, b, c = await asyncio.gather(
            client.post("/v1/events/batch", json=events),
            client.post("/v1/events/batch", json=events),
            client.post("/v1/events/batch", json=overlapping),
        )

        assert a.status_code == b.status_code == c.status_code == 202
        assert a.content == b.content
        assert c.json()["accepted"][:2] == a.json()["accepted"][1:]
        assert len(publisher.records()) == 4
        assert publisher.calls == 2


async def test_a_waiting_request_takes_over_when_the_first_one_fails(creds: Credentials) -> None:
    publisher = InMemoryEventPublisher(delay_s=0.1, fail_after=0)
    store = InMemoryIdempotencyStore()
    async with ingest_client(publisher, store, creds) as client:
        event = make_event(id_="takeover")

        first, second = await asyncio.gather(
            client.post("/v1/events", json=event), client.post("/v1/events", json=event)
        )

        assert sorted([first.status_code, second.status_code]) == [202, 503]
        assert len(publisher.records()) == 1


async def test_metrics_count_accepted_rejected_latency_and_in_flight(creds: Credentials) -> None:
    publisher = InMemoryEventPublisher()
    async with ingest_client(publisher, InMemoryIdempotencyStore(), creds) as client:
        await client.post("/v1/events/batch", json=batch("m", 3))
        await client.post("/v1/events/batch", json=batch("m", 3))
        bad = batch("bad", 4)
        bad[1]["time"] = "soon"
        await client.post("/v1/events/batch", json=bad)
        await client.post("/v1/events", json=make_event(), headers={"Authorization": ""})
        await client.post("/v1/events", content=b"{", headers={"content-type": "application/json"})

        text = (await client.get("/metrics")).text

    def value(line: str) -> float:
        (found,) = [x for x in text.splitlines() if x.startswith(line + " ")]
        return float(found.rsplit(" ", 1)[1])

    assert value('chancery_ingest_events_accepted_total{outcome="appended"}') == 3
    assert value('chancery_ingest_events_accepted_total{outcome="duplicate"}') == 3
    assert value('chancery_ingest_events_rejected_total{reason="invalid"}') == 4
    assert value('chancery_ingest_events_rejected_total{reason="unauthenticated"}') == 1
    assert value('chancery_ingest_events_rejected_total{reason="malformed_json"}') == 1
    assert value("chancery_ingest_publish_seconds_count") == 1
    assert value("chancery_ingest_requests_in_flight") == 0


class _Capture(logging.Handler):
    """Keeps each record with the correlation id in force when it was logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[logging.LogRecord, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record, correlation_id.get()))


async def test_logs_carry_event_ids_and_the_correlation_id(creds: Credentials) -> None:
    capture = _Capture()
    logger = logging.getLogger("services.ingest")
    logger.addHandler(capture)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        async with ingest_client(InMemoryEventPublisher(), InMemoryIdempotencyStore(), creds) as c:
            ok = await c.post(
                "/v1/events/batch", json=batch("log", 2), headers={"X-Correlation-ID": "corr-42"}
            )
            refused = await c.post("/v1/events", json=make_event(id_="bad", time="x"))
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old)

    assert ok.headers["X-Correlation-ID"] == "corr-42"
    accepted = [(r, cid) for r, cid in capture.seen if r.getMessage().startswith("accepted")]
    (record, cid) = accepted[0]
    assert cid == "corr-42"
    assert record.event_ids == ["log-0", "log-1"]  # type: ignore[attr-defined]
    refusal = [(r, cid) for r, cid in capture.seen if "refused" in r.getMessage()]
    assert refusal[0][0].event_ids == ["bad"]  # type: ignore[attr-defined]
    assert refusal[0][1] == refused.headers["X-Correlation-ID"] == refused.json()["correlation_id"]


async def test_every_refusal_is_problem_json_with_a_detail(creds: Credentials) -> None:
    async with ingest_client(InMemoryEventPublisher(), InMemoryIdempotencyStore(), creds) as c:
        responses = [
            await c.post("/v1/events", content=b"{", headers={"content-type": "application/json"}),
            await c.post("/v1/events", content=b"{}", headers={"content-type": "text/plain"}),
            await c.post("/v1/events", json={}),
            await c.post("/v1/events", json=make_event(), headers={"Authorization": "Basic x"}),
        ]
    for r in responses:
        assert r.headers["content-type"] == "application/problem+json"
        assert len(r.json()["detail"]) > 10


async def test_ingest_remembers_each_event_by_the_contracts_content_digest(
    creds: Credentials,
) -> None:
    """The digest ingest keeps per identity is `content_digest`, which the projector and the
    API compare copies by. (The golden retraction names no golden target: left out.)"""
    from chancery.contract import content_digest, event_key, parse_incoming

    from .support import GOLDEN

    events = [e for t, e in GOLDEN.items() if t != "diplomacy.event.retracted"]
    store = InMemoryIdempotencyStore()
    async with ingest_client(InMemoryEventPublisher(), store, creds) as client:
        response = await client.post("/v1/events/batch", json=events)
    assert response.status_code == 202, response.text
    for event in map(parse_incoming, events):
        record = store.records[event_key(event.source, event.id)]
        assert record.digest == content_digest(event), event.type
