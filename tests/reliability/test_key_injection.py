"""Scenario 5, third part: key-injection characters never reach Redis as a key or a pattern.

Redis glob characters (`* ? [ ]`), hash-tag braces (`{ }`), the key separator (`:`), NUL,
the pair separator (`|`), spaces, newlines and very long strings are put in every id and
parameter a client controls: the API's path parameters, queries and headers, and the ids,
sources, trip, person and proposal ids and retraction targets of events sent to ingest.
Every payload carries a marker (`zq<n>`), so that wherever it lands it can be found.

While this runs, Redis MONITOR records every command the services send. For each command
that carries a marker, the server itself says which arguments are keys (COMMAND GETKEYS):
none may contain one; and no command may take one as a pattern (KEYS, SCAN MATCH, ...).
Afterwards no key of the database contains one. Payloads do reach Redis, as values (the
events accepted with such sources and ids are stored and found again by the API): this is
what shows the monitor saw them. Last, the keyspace's own guard refuses every payload as a
key part, except `|` (the pair separator, `CHN|USA`), which never comes from a client
unvalidated.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from chancery import keyspace
from chancery.keyspace import PartitionSpace, UnsafeKeyPartError
from tests.e2e.conftest import BATCH_TYPE, seed_events
from tests.unit.ingest.support import make_event

from .redis_monitor import keys_of, monitoring, patterns_of
from .stack import Services, StackFactory

pytestmark = pytest.mark.reliability

MARK = b"zq"
CHARS = [
    "*", "?", "[", "]", "[a-z]", "{", "}", "{p0}", ":", ":*", "\x00", "|", " ", "\n", "\r\n",
    "*:{p1}:offset", "?*[]{}:", "x" * 10_000,
]  # fmt: skip
PAYLOADS = [f"zq{n}{c}" for n, c in enumerate(CHARS)]


@pytest_asyncio.fixture(loop_scope="session")
async def injected(stack: StackFactory) -> AsyncIterator[Services]:
    async with stack(api={"max_streams_per_client": 100}) as services:
        await services.load(seed_events())
        yield services


def api_requests(p: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(path, query, headers) putting `p` everywhere the API takes a client's value."""
    q = quote(p, safe="")
    out: list[tuple[str, dict[str, str], dict[str, str]]] = [
        (f"/v1/relations/{q}/USA", {}, {}),
        (f"/v1/relations/CHN/{q}", {"as_of": p}, {}),
        (f"/v1/relations/{q}/USA/timeline", {}, {}),
        (f"/v1/countries/{q}/timeline", {}, {}),
        (f"/v1/itineraries/{q}", {}, {}),
        (f"/v1/people/{q}", {}, {}),
        (f"/v1/events/{q}", {}, {}),
        (f"/v1/events/{q}", {"source": p}, {}),
        ("/v1/events/seed-1", {"source": p}, {}),
        ("/v1/relations", {"country": p}, {}),
        ("/v1/relations", {"country": "CHN", "cursor": p}, {}),
        ("/v1/visits", {"country": p}, {}),
        ("/v1/visits", {"country": "UKR", "status": p, "cursor": p}, {}),
        ("/v1/countries/CHN/timeline", {"type": p}, {}),
        ("/v1/countries/CHN/timeline", {"cursor": p}, {}),
        ("/v1/relations/CHN/USA", {"min_position": p}, {}),
        ("/v1/relations/CHN/USA", {"min_position": f"chancery.events@{p}"}, {}),
        ("/v1/stream", {"after": p}, {}),
        ("/v1/stream", {"country": p}, {}),
        ("/v1/stream", {"type": p}, {}),
    ]
    if p.isprintable() and p == p.strip():  # a header cannot carry these at all
        out += [
            ("/v1/relations/CHN/USA", {}, {"Chancery-Min-Position": p}),
            ("/v1/stream", {}, {"Last-Event-ID": p}),
            ("/v1/relations/CHN/USA", {}, {"X-Correlation-ID": p}),
        ]
    return out


def ingest_events(n: int, p: str) -> list[dict[str, Any]]:
    """Events that put `p` in each identifier an event has, one identifier per event."""
    trip = make_event("diplomacy.visit.announced", f"inj-trip-{n}")
    trip["data"]["trip_id"] = p
    person = make_event("diplomacy.envoy.appointed", f"inj-person-{n}")
    person["data"]["person"]["id"] = p
    proposal = make_event("diplomacy.proposal.made", f"inj-proposal-{n}")
    proposal["data"]["proposal_id"] = p
    pair = make_event(id_=f"inj-pair-{n}")
    pair["data"]["actor1"] = p
    target = make_event("diplomacy.event.retracted", f"inj-retract-{n}")
    target["data"] = {"target": {"source": f"urn:{p}", "id": p}, "reason": "a test"}
    return [
        make_event(id_=p),
        make_event(id_=f"inj-source-{n}", source=f"urn:{p}"),
        make_event(id_=f"inj-subject-{n}", subject=p),
        trip,
        person,
        proposal,
        pair,
        target,
    ]


async def inject(services: Services, chosen: list[int]) -> None:
    """Send every payload everywhere, under MONITOR, and check where each landed."""
    statuses: dict[int, int] = {}
    server_errors: list[str] = []
    accepted: list[dict[str, Any]] = []
    position = None
    redis = Redis.from_url(services.redis_url)
    try:
        async with monitoring(services.redis_url) as monitor:
            for n in chosen:
                p = PAYLOADS[n]
                for path, params, headers in api_requests(p):
                    async with services.api.stream(
                        "GET", path, params=params, headers=headers
                    ) as response:
                        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                        if response.status_code >= 500:
                            server_errors.append(f"{response.status_code} GET {path} {params}")
                        assert response.status_code in (200, 404, 410, 422), (path, params)
                for event in ingest_events(n, p):
                    response = await services.ingest.post(
                        "/v1/events/batch",
                        content=json.dumps([event]),
                        headers={"Content-Type": BATCH_TYPE},
                    )
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    assert response.status_code in (202, 422), response.text
                    if response.status_code == 202:
                        accepted.append(event)
                        position = response.json()["position"]
            # Those accepted are projected and found again through the API.
            if position is not None:
                await services.until_applied(position)
            for event in accepted:
                response = await services.api.get(
                    f"/v1/events/{quote(event['id'], safe='')}", params={"source": event["source"]}
                )
                assert response.status_code == 200, (event["id"], response.text)
            services.projector_alive()
        print(f"statuses {statuses}, {len(accepted)} accepted, {len(monitor.commands)} commands")
        assert server_errors == []
        # Stored events are compressed (chancery/keyspace.py): a payload inside one is seen
        # once the value is decompressed.
        marked = [c for c in monitor.commands if any(MARK in a for a in _unpacked(c))]
        as_keys, as_patterns = [], []
        for command in marked:
            if any(MARK in k for k in await keys_of(redis, command)):
                as_keys.append(command)
            if any(MARK in p for p in patterns_of(command)):
                as_patterns.append(command)
        assert as_keys == [], [c[:3] for c in as_keys[:5]]
        assert as_patterns == [], [c[:3] for c in as_patterns[:5]]
        assert not [c for c in monitor.commands if c[0].upper() in (b"KEYS", b"FLUSHALL")]
        assert [k async for k in redis.scan_iter(match=b"*zq*")] == []
        if accepted:  # what shows that MONITOR saw the payloads where they may go: values
            assert marked, "accepted payloads never reached Redis even as values"
    finally:
        await redis.aclose()


def _unpacked(command: list[bytes]) -> list[bytes]:
    """A command's arguments, and the event in each that is a stored event."""
    out = list(command)
    for arg in command:
        try:
            out.append(keyspace.decode_stored_event(arg, 0)[1])
        except Exception:  # noqa: BLE001 - most arguments are no stored event
            continue
    return out


def _trailing_newline(p: str) -> bool:
    return p.endswith("\n") and not p.endswith("\r\n")


NEWLINE_ENDED = [n for n, p in enumerate(PAYLOADS) if _trailing_newline(p)]
OTHERS = [n for n in range(len(PAYLOADS)) if n not in NEWLINE_ENDED]


async def test_injected_characters_never_become_keys_or_patterns(injected: Services) -> None:
    await inject(injected, OTHERS)


async def test_a_trailing_newline_never_becomes_a_key(injected: Services) -> None:
    await inject(injected, NEWLINE_ENDED)


def _builders() -> list[Callable[[str], str]]:
    """Every key builder that takes a part from outside, one part at a time."""
    space = PartitionSpace(1, 0)
    return [
        space.partners,
        space.pair_timeline,
        space.solo_timeline,
        space.timeline_partners,
        space.person,
        space.person_trips,
        space.trip_events,
        space.trip_state,
        space.visits,
        lambda part: space.relation(part, "days"),
        lambda part: space.relation("CHN|USA", part),
        lambda part: keyspace.trip_key(part, "trip"),
        lambda part: keyspace.trip_key("li-hui", part),
        keyspace.idempotency,
    ]


def test_the_keyspace_refuses_every_payload_as_a_key_part() -> None:
    for n in OTHERS:
        payload = PAYLOADS[n]
        for build in _builders():
            if set(payload) <= set("zq0123456789|"):
                assert "|" in build(payload)  # the pair separator is a legal key part
                continue
            with pytest.raises(UnsafeKeyPartError):
                build(payload)


def test_the_keyspace_refuses_a_trailing_newline() -> None:
    for build in _builders():
        with pytest.raises(UnsafeKeyPartError):
            build("li-hui\n")


async def test_httpx_sends_what_the_payloads_say() -> None:
    """The payloads leave the client as written (no client-side cleaning hides a finding)."""
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record), base_url="http://t") as c:
        for p in PAYLOADS[:-1]:
            await c.get(f"/v1/people/{quote(p, safe='')}", params={"country": p})
    for p, path in zip(PAYLOADS[:-1], seen, strict=True):
        assert quote(p, safe="") in path
