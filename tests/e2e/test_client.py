"""chancery.client against the real stack: the three services as processes
(tests/e2e/processes.py) on the session's Kafka and Redis.

- posting through ingest, and every read of the API, typed, both clients;
- a session reads its own writes with no bookkeeping;
- errors come back typed, with ingest's problem details;
- a subscription survives the API being restarted under it: every event posted before,
  during and after the restart arrives once, in order per subject, without the subscriber
  doing anything.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import date

import pytest

from chancery.client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    InvalidRequest,
    LoggedEvent,
    NotFound,
    RetryNotice,
    StreamedEvent,
    Unauthorized,
)
from chancery.contract import Event, MeetingHeld
from tests.e2e.conftest import seed_events
from tests.e2e.processes import Services, running_services
from tests.servers import _Databases
from tests.unit.domain.builders import meeting

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def services(
    kafka_bootstrap: str,
    _redis_databases: _Databases,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Services]:
    with running_services(
        kafka_bootstrap,
        _redis_databases.take(),
        tmp_path_factory.mktemp("client-stack"),
        min_position_wait_s="5",
    ) as running:
        yield running


def both_keys(services: Services) -> tuple[Client, Client]:
    """A writer (ingest) and a reader (the API): the stack's keys each have one scope."""
    writer = Client(services.api_url, services.ingest_url, api_key=services.write_key)
    reader = Client(services.api_url, services.ingest_url, api_key=services.read_key)
    return writer, reader


def talks(source: str, n: int, *parties: str, day: str = "2023-06-01") -> list[Event]:
    return [
        meeting(f"talks-{i:03d}", day, *parties).model_copy(update={"source": source})
        for i in range(n)
    ]


def test_the_article_goes_in_and_every_read_comes_back_typed(services: Services) -> None:
    writer, reader = both_keys(services)
    with writer, reader:
        accepted = writer.post(seed_events())
        again = writer.post(seed_events())  # resubmitting is safe: same answer, nothing added
        assert again.accepted == accepted.accepted
        assert (accepted.appended, again.appended) == (len(seed_events()), 0)
        at = accepted.position
        relation = reader.relation("usa", "chn", min_position=at)
        assert relation.pair == "CHN|USA"
        assert relation.last_contact is not None
        before = reader.relation("IRN", "SAU", as_of=date(2023, 2, 28), min_position=at)
        after = reader.relation("IRN", "SAU", min_position=at)
        assert before.status != after.status
        assert {item.pair for item in reader.relations("CHN", limit=1)} >= {"CHN|USA"}
        assert reader.country_relations("CHN", min_position=at).items
        assert reader.scores("IRN", "SAU", bucket="month", min_position=at).points
        timeline = list(reader.timeline(pair=("CHN", "USA"), limit=2, min_position=at))
        assert timeline
        assert all(isinstance(entry, LoggedEvent) for entry in timeline)
        assert any(isinstance(entry.event, MeetingHeld) for entry in timeline)
        assert len(list(reader.record("IRN", "SAU", limit=2))) >= 2
        trips = reader.itinerary("li-hui", min_position=at).trips
        assert [trip.trip_id for trip in trips]
        assert reader.person("li-hui").person is not None
        (found,) = reader.event("wang-yi-sullivan-vienna-talks").matches
        assert found.event.type == "diplomacy.meeting.held"
        assert list(reader.visits("UKR", min_position=at))


def test_a_session_reads_its_own_writes(services: Services) -> None:
    source = f"https://client.e2e/session/{uuid.uuid4().hex[:8]}"
    with Client(services.api_url, services.ingest_url, api_key=services.key) as c:
        for n in range(1, 4):
            with c.session() as session:
                session.post(talks(source, 1, "ISL", "NZL", day=f"2023-06-0{n}")[0:1])
                # No min_position here: the session carries it.
                relation = session.relation("ISL", "NZL")
                assert relation.event_count == n
                assert relation.last_contact is not None
                assert str(relation.last_contact.when) == f"2023-06-0{n}"
                assert session.position is not None
            source += "x"  # the next round's event is another event


async def test_the_async_session_reads_its_own_writes(services: Services) -> None:
    source = f"https://client.e2e/async/{uuid.uuid4().hex[:8]}"
    async with (
        AsyncClient(services.api_url, services.ingest_url, api_key=services.key) as chancery,
        chancery.session() as session,
    ):
        accepted = await session.post(talks(source, 3, "MLT", "URY"))
        assert len(accepted.accepted) == 3
        relation = await session.relation("MLT", "URY")
        assert relation.event_count == 3
        entries = [e async for e in session.timeline(pair=("MLT", "URY"), limit=2)]
        assert [e.event.id for e in entries] == ["talks-000", "talks-001", "talks-002"]


def test_failures_come_back_typed_with_the_problem(services: Services) -> None:
    source = f"https://client.e2e/errors/{uuid.uuid4().hex[:8]}"
    writer, reader = both_keys(services)
    with writer, reader:
        (event,) = talks(source, 1, "FJI", "TON")
        writer.post(event)
        with pytest.raises(Conflict) as conflict:
            writer.post(event.model_copy(update={"subject": "changed"}))
        assert [e.id for e in conflict.value.errors] == [event.id]
        bad = {**event.model_dump(mode="json", exclude_none=True), "id": "other"}
        bad["data"] = {**bad["data"], "parties": ["FJI"]}
        with pytest.raises(InvalidRequest) as invalid:
            writer.post([event, bad])
        assert [(e.index, e.field) for e in invalid.value.errors] == [(1, "data.parties")]
        with pytest.raises(NotFound):
            reader.person("nobody-at-all")
        with pytest.raises(Forbidden) as refused:
            reader.post(event)  # the reading key may not write
        assert "events:write" in refused.value.explanation
    with (
        Client(services.api_url, api_key="chk_000000000000_" + "x" * 43) as stranger,
        pytest.raises(Unauthorized),
    ):
        stranger.relation("CHN", "USA")


async def test_a_subscription_survives_the_api_restarting_under_it(services: Services) -> None:
    source = f"https://client.e2e/resume/{uuid.uuid4().hex[:8]}"
    pairs = (("BHR", "OMN"), ("KWT", "QAT"))  # two subjects: two partitions, each in order
    batches = {
        name: [
            meeting(f"{name}-{i:02d}-{a}", "2023-07-01", a, b).model_copy(update={"source": source})
            for i in range(10)
            for a, b in pairs
        ]
        for name in ("before", "during", "after")
    }
    notices: list[RetryNotice] = []
    got: list[StreamedEvent] = []
    async with (
        AsyncClient(
            services.api_url,
            services.ingest_url,
            api_key=services.key,
            on_retry=notices.append,
        ) as chancery,
        chancery.subscribe(countries=["BHR", "KWT"]) as subscription,
    ):

        async def until(count: int) -> None:
            async with asyncio.timeout(90):
                async for delivered in subscription:
                    if delivered.event.source == source:
                        got.append(delivered)
                    if len(got) >= count:
                        return

        await chancery.post(batches["before"])
        await until(20)
        # The API goes away and comes back on the same port; events go in meanwhile.
        await asyncio.to_thread(services.stop, "api")
        await chancery.post(batches["during"])
        await asyncio.to_thread(services.start, "api")
        await until(40)
        await chancery.post(batches["after"])
        await until(60)
    assert any(n.reconnecting for n in notices)  # it did lose the stream, and resumed
    ids = [d.event.id for d in got]
    assert len(ids) == len(set(ids)) == 60  # nothing twice, nothing missing
    for a, _ in pairs:  # each subject's events in the order they were posted
        posted = [e.id for name in ("before", "during", "after") for e in batches[name]]
        assert [i for i in ids if i.endswith(a)] == [i for i in posted if i.endswith(a)]


def test_a_new_subscription_resumes_where_an_old_one_stopped(services: Services) -> None:
    source = f"https://client.e2e/after/{uuid.uuid4().hex[:8]}"
    first, second = talks(source, 2, "CHL", "PER")
    with Client(services.api_url, services.ingest_url, api_key=services.key) as c:
        with c.subscribe(countries=["CHL"]) as subscription:
            c.post(first)
            delivered = next(d for d in subscription if d.event.source == source)
            assert delivered.event.id == first.id
            resume = subscription.position
        assert resume is not None
        c.post(second)
        with c.subscribe(countries=["CHL"], after=resume) as later:
            delivered = next(d for d in later if d.event.source == source)
        assert delivered.event.id == second.id  # not the first again
