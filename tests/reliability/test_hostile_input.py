"""Scenario 5, second part: hostile bodies and parameters, sent by hand over real sockets.

Ingest runs with a 256 KiB body limit and a 1.5 s body timeout (the same code as the
defaults, 4 MiB and 10 s, at a size a test can afford). Each request below must be refused
cleanly: a 4xx (never a 5xx, never a hang), with an RFC 9457 problem body whenever the
application (not the HTTP parser) refuses it; and nothing may be written: the topic's and
the dead-letter topic's end offsets and every Redis key are the same afterwards. A chunked
body that is fine is accepted (chunked transfer is not refused as such), and ingest and the
API still answer after the barrage.

The API's parameters get the same treatment: bytes that are not UTF-8 in paths and queries,
NULs, very long values, absurd numbers, positions naming 100,000 partitions, dates at the
edges of the calendar.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from starlette.requests import ClientDisconnect

from tests.e2e.conftest import BATCH_TYPE, seed_events
from tests.unit.ingest.support import make_event

from .evidence import nothing_written, problem_shape, server_errors_logged, written
from .stack import EVENT_TYPE, Services, StackFactory
from .wire import RawResponse, chunked, exchange, request_head

pytestmark = pytest.mark.reliability

BODY_LIMIT = 256 * 1024
BODY_TIMEOUT_S = 1.5
DEPTH = 100_000


@pytest_asyncio.fixture(loop_scope="session")
async def hostile(stack: StackFactory) -> AsyncIterator[Services]:
    async with stack(
        ingest={"max_body_bytes": BODY_LIMIT, "body_timeout_s": BODY_TIMEOUT_S}
    ) as services:
        await services.load(seed_events())
        yield services


@dataclass(frozen=True)
class Hostile:
    """One request to ingest: the body in parts, how it is framed, what it must get."""

    name: str
    parts: list[bytes]
    expected: frozenset[int]
    path: str = "/v1/events"
    content_type: str = EVENT_TYPE
    framing: str = "length"  # "length": Content-Length of the parts; "chunked"; or a number
    pause_s: float = 0.0
    by_parser: bool = False  # refused by the HTTP server before the app: no problem body
    extra: list[tuple[str, str]] = field(default_factory=list)


def _event(**fields: Any) -> bytes:
    return json.dumps(make_event(id_="hostile", **fields)).encode()


def _goldstein(value: bytes) -> bytes:
    body = _event()
    assert b'"goldstein": 1.9' in body
    return body.replace(b'"goldstein": 1.9', b'"goldstein": ' + value)


def _valid_batch(n: int, size: int) -> bytes:
    filler = "x" * size
    events = [make_event(id_=f"big-{i}") | {"subject": filler[:200]} for i in range(n)]
    return json.dumps(events).encode()


def hostile_bodies() -> list[Hostile]:
    good = _event()
    big = _valid_batch(1, 0)[:-1] + b"," + b" " * (BODY_LIMIT + 10) + b"]"
    nested = b"[" * DEPTH + b"]" * DEPTH
    nested_data = good.replace(
        b'"cameo"', b'"deep": ' + b"[" * 20_000 + b"]" * 20_000 + b', "cameo"'
    )
    nested_objects = b'{"a":' * 20_000 + b"1" + b"}" * 20_000
    event = make_event(id_="utf8")
    as_text = json.dumps(event)
    return [
        Hostile("oversize, declared", [big], frozenset({413})),
        Hostile(
            "oversize, chunked (no length)",
            [big[i : i + 32_768] for i in range(0, len(big), 32_768)],
            frozenset({413}),
            path="/v1/events/batch",
            content_type=BATCH_TYPE,
            framing="chunked",
        ),
        Hostile(
            "oversize, length understated (the rest is garbage for the parser)",
            [big],
            frozenset({400, 413}),
            framing="1000",
            by_parser=True,
        ),
        Hostile(
            "slow body (a byte at a time past the timeout)",
            [good[i : i + 40] for i in range(0, len(good), 40)],
            frozenset({408}),
            pause_s=0.3,
        ),
        Hostile(
            "slow chunked body",
            [good[i : i + 40] for i in range(0, len(good), 40)],
            frozenset({408}),
            framing="chunked",
            pause_s=0.3,
        ),
        Hostile(
            "length overstated (the body never ends)",
            [good],
            frozenset({408}),
            framing=str(len(good) + 500),
        ),
        Hostile(
            "chunk size not hexadecimal",
            [b"zz\r\n" + good + b"\r\n0\r\n\r\n"],
            frozenset({400}),
            framing="chunked-raw",
            by_parser=True,
        ),
        Hostile(
            "chunk shorter than its size",
            [b"%x\r\n" % (len(good) + 100) + good + b"\r\n0\r\n\r\n"],
            frozenset({400, 408}),
            framing="chunked-raw",
        ),
        Hostile(
            "deeply nested arrays",
            [nested],
            frozenset({400, 422}),
            path="/v1/events/batch",
            content_type=BATCH_TYPE,
        ),
        Hostile("deeply nested arrays, single", [nested], frozenset({400, 422})),
        Hostile("deeply nested objects", [nested_objects], frozenset({400, 422})),
        Hostile("deeply nested array inside data", [nested_data], frozenset({400, 422})),
        Hostile("a 200 kB id", [_event(id="a" * 200_000)], frozenset({422})),
        Hostile(
            "a 200 kB source",
            [_event(source="https://x.example/" + "a" * 200_000)],
            frozenset({422}),
        ),
        Hostile(
            "a 200 kB string in data",
            [good.replace(b'"cameo"', b'"summary": "' + b"b" * 200_000 + b'", "cameo"')],
            frozenset({422}),
        ),
        Hostile("a 200 kB key", [good[:-1] + b', "' + b"k" * 200_000 + b'": 1}'], frozenset({422})),
        Hostile(
            "a batch of 1001 events",
            [json.dumps([{"id": str(i)} for i in range(1001)]).encode()],
            frozenset({422}),
            path="/v1/events/batch",
            content_type=BATCH_TYPE,
        ),
        Hostile(
            "invalid UTF-8 in a string",
            [as_text.replace('"utf8"', '"\xff\xfe"').encode("latin-1")],
            frozenset({400}),
        ),
        Hostile(
            "overlong UTF-8 ('/' as C0 AF)",
            [as_text.replace('"utf8"', '"a\xc0\xafb"').encode("latin-1")],
            frozenset({400}),
        ),
        Hostile("UTF-16 body", [as_text.encode("utf-16")], frozenset({400})),
        Hostile(
            "a lone surrogate escape",
            [as_text.replace('"utf8"', '"\\ud800x"').encode()],
            frozenset({400, 422}),
        ),
        Hostile(
            "a raw NUL inside a string",
            [as_text.replace('"utf8"', '"a\x00b"').encode()],
            frozenset({400}),
        ),
        Hostile(
            "a NUL escape in the id",
            [as_text.replace('"utf8"', '"a\\u0000b"').encode()],
            frozenset({422}),
        ),
        Hostile("a number beyond double", [_goldstein(b"1e999")], frozenset({400, 422})),
        Hostile("NaN", [_goldstein(b"NaN")], frozenset({400})),
        Hostile("-Infinity", [_goldstein(b"-Infinity")], frozenset({400})),
        Hostile("not JSON", [b"\x00\x01\x02garbage"], frozenset({400})),
        Hostile("empty body", [], frozenset({400})),
        Hostile("a JSON string, not an event", [b'"event"'], frozenset({422})),
        Hostile("text/plain", [good], frozenset({415}), content_type="text/plain"),
        Hostile("no content type", [good], frozenset({415}), content_type=""),
        Hostile(
            "form-encoded",
            [b"specversion=1.0&id=x"],
            frozenset({415}),
            content_type="application/x-www-form-urlencoded",
        ),
        Hostile(
            "a Content-Length that is not a number",
            [good],
            frozenset({400}),
            framing="12abc",
            by_parser=True,
        ),
        Hostile(
            "both Content-Length and chunked (request smuggling)",
            chunked(good),
            frozenset({400}),
            framing="both",
            by_parser=True,
        ),
    ]


def _request(case: Hostile, services: Services) -> tuple[bytes, list[bytes]]:
    headers = [("Authorization", f"Bearer {services.keys.write}")]
    if case.content_type:
        headers.append(("Content-Type", case.content_type))
    parts = case.parts
    size = sum(len(p) for p in parts)
    if case.framing == "length":
        headers.append(("Content-Length", str(size)))
    elif case.framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        parts = chunked(*parts)
    elif case.framing == "chunked-raw":
        headers.append(("Transfer-Encoding", "chunked"))
    elif case.framing == "both":
        headers += [("Content-Length", "5"), ("Transfer-Encoding", "chunked")]
    else:
        headers.append(("Content-Length", case.framing))
    host = services.ingest_url.removeprefix("http://")
    return request_head("POST", case.path, host, headers + case.extra), parts


def _verdict(
    name: str, response: RawResponse, expected: frozenset[int], *, by_parser: bool
) -> list[str]:
    wrong: list[str] = []
    if response.status not in expected:
        wrong.append(
            f"{name}: {response.status}, expected {sorted(expected)}: {response.body[:300]!r}"
        )
    if response.status >= 500 or response.status < 400:
        return wrong
    if by_parser and response.headers.get("content-type") != "application/problem+json":
        return wrong  # the HTTP server refused it before the application saw it
    if response.headers.get("content-type") != "application/problem+json":
        wrong.append(f"{name}: content-type {response.headers.get('content-type')!r}")
        return wrong
    return wrong + [f"{name}: {p}" for p in problem_shape(response.json(), response.status)]


@pytest.mark.timeout(300)
async def test_hostile_bodies_are_refused_cleanly_and_nothing_is_written(
    hostile: Services, caplog: pytest.LogCaptureFixture
) -> None:
    topics = [hostile.topic, f"{hostile.topic}.dlq"]
    before = await written(hostile.bootstrap, topics, hostile.redis_url)
    wrong: list[str] = []
    seen: dict[str, int] = {}
    for case in hostile_bodies():
        head, parts = _request(case, hostile)
        try:
            response = await exchange(
                hostile.ingest_url, head, parts, pause_s=case.pause_s, timeout_s=30
            )
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            wrong.append(f"{case.name}: no answer ({exc!r})")
            continue
        seen[case.name] = response.status
        wrong += _verdict(case.name, response, case.expected, by_parser=case.by_parser)
    print(json.dumps(seen, indent=1))
    # Refused cleanly: no unhandled exception behind any answer (a client that breaks off
    # mid-body is the known exception: test_a_client_breaking_off_mid_body_is_no_error).
    assert server_errors_logged(caplog.records, besides=(ClientDisconnect,)) == []
    # Still serving, and still writing what is fine: a chunked body is no reason to refuse.
    health = await hostile.ingest.get("/readyz")
    assert health.status_code == 200, health.text
    after = await written(hostile.bootstrap, topics, hostile.redis_url)
    assert wrong == [], "\n".join(wrong)
    assert nothing_written(before, after) == []

    event = json.dumps(make_event(id_="chunked-ok")).encode()
    head, parts = _request(
        Hostile("chunked, fine", [event[:50], event[50:]], frozenset({202}), framing="chunked"),
        hostile,
    )
    accepted = await exchange(hostile.ingest_url, head, parts, pause_s=0.05)
    assert accepted.status == 202, accepted.body
    position = accepted.json()["position"]
    read = await hostile.api.get("/v1/events/chunked-ok", params={"min_position": position})
    assert read.status_code == 200, read.text


async def test_a_client_breaking_off_mid_body_is_no_error(
    hostile: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """A client gone mid-body (a dropped mobile link; a chunk framing the HTTP parser
    refuses, after which the server answers 400 and tells the app the client left) is a
    client error: nothing to log as a server failure."""
    good = json.dumps(make_event(id_="half")).encode()
    host = hostile.ingest_url.removeprefix("http://")
    auth = [("Authorization", f"Bearer {hostile.keys.write}"), ("Content-Type", EVENT_TYPE)]
    head = request_head("POST", "/v1/events", host, [*auth, ("Content-Length", "5000")])
    url = urlsplit(hostile.ingest_url)
    _, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(head + good[:100])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    bad = Hostile(
        "bad chunk", [b"zz\r\n" + good + b"\r\n0\r\n\r\n"], frozenset({400}), framing="chunked-raw"
    )
    framing_head, parts = _request(bad, hostile)
    assert (await exchange(hostile.ingest_url, framing_head, parts)).status == 400
    await asyncio.sleep(0.5)
    assert server_errors_logged(caplog.records) == []


# --- the API's parameters --------------------------------------------------------------------

LONG = "A" * 60_000


def api_targets() -> list[tuple[str, str, frozenset[int]]]:
    """(name, raw request target, acceptable statuses). 200 only where the value is harmless."""
    many_partitions = "chancery.events@" + ",".join(f"{p}:1" for p in range(100_000))
    refused = frozenset({400, 404, 414, 422, 431})
    return [
        ("invalid UTF-8 in a code", "/v1/relations/%FF%FE/USA", refused),
        ("invalid UTF-8 in a person id", "/v1/itineraries/%C0%AF", refused),
        ("invalid UTF-8 in an event id", "/v1/events/a%FFb", refused),
        ("invalid UTF-8 in a query", "/v1/relations?country=%FF", refused),
        ("invalid UTF-8 in a source", "/v1/events/seed-1?source=%ED%A0%80", refused),
        ("raw bytes over 0x7F in the path", "/v1/people/\xff\xfe", refused),
        ("a NUL in a code", "/v1/relations/CHN%00/USA", refused),
        ("a NUL in a person id", "/v1/people/li-hui%00", refused),
        ("a NUL in an event id", "/v1/events/seed-1%00", refused),
        ("a NUL in a query", "/v1/visits?country=UKR%00", refused),
        ("a 60 kB code", f"/v1/countries/{LONG}/timeline", refused),
        ("a 60 kB person id", f"/v1/people/{LONG.lower()}", refused),
        ("a 60 kB event id", f"/v1/events/{LONG}", refused),
        ("a 60 kB source", f"/v1/events/seed-1?source=https://{LONG}", refused | {404}),
        ("a 60 kB cursor", f"/v1/relations?country=CHN&cursor={LONG}", refused),
        (
            "a 60 kB type filter",
            f"/v1/countries/CHN/timeline?type={','.join(['meeting.held'] * 4000)}",
            refused | {200},
        ),
        ("10,000 countries", f"/v1/relations?country={','.join(['CHN'] * 10_000)}", refused),
        (
            "a position naming 100,000 partitions",
            f"/v1/relations/CHN/USA?min_position={many_partitions}",
            refused,
        ),
        (
            "a position with a huge offset",
            "/v1/relations/CHN/USA?min_position=chancery.events@0:" + "9" * 5000,
            refused | {504},
        ),
        ("a negative offset", "/v1/relations/CHN/USA?min_position=chancery.events@0:-5", refused),
        ("limit = 10^30", "/v1/relations?country=CHN&limit=" + "1" + "0" * 30, refused),
        ("limit = -1", "/v1/relations?country=CHN&limit=-1", refused),
        ("as_of, not a date", "/v1/relations/CHN/USA?as_of=2023-02-30", refused),
        (
            "known_at without an offset",
            "/v1/relations/CHN/USA?known_at=2023-05-12T00:00:00",
            refused,
        ),
        ("a 100 kB query string", f"/v1/relations/CHN/USA?x={'y' * 100_000}", refused | {200}),
        (
            "a stream resumed from 100,000 partitions",
            f"/v1/stream?after={many_partitions}",
            refused,
        ),
        ("a path of 2,000 segments", "/v1/people/" + "/".join(["a"] * 2000), refused),
        ("a dot-dot path", "/v1/people/../../openapi.json", refused),
    ]


@pytest.mark.timeout(300)
async def test_hostile_parameters_are_refused_cleanly(hostile: Services) -> None:
    before = await written(hostile.bootstrap, [hostile.topic], hostile.redis_url)
    host = hostile.api_url.removeprefix("http://")
    auth = [("Authorization", f"Bearer {hostile.keys.read}")]
    wrong: list[str] = []
    for name, target, expected in api_targets():
        head = request_head("GET", target, host, auth)
        try:
            response = await exchange(hostile.api_url, head)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            wrong.append(f"{name}: no answer ({exc!r})")
            continue
        wrong += _verdict(name, response, expected, by_parser=response.status in (400, 414, 431))
    for name, value in [
        ("a huge Last-Event-ID", "chancery.events@0:" + "9" * 20_000),
        ("a NUL in Last-Event-ID", "x\x01y"),
    ]:
        head = request_head("GET", "/v1/stream", host, [*auth, ("Last-Event-ID", value)])
        response = await exchange(hostile.api_url, head)
        wrong += _verdict(
            name, response, frozenset({400, 410, 422, 431}), by_parser=response.status in (400, 431)
        )
    assert (await hostile.api.get("/readyz")).status_code == 200
    assert wrong == [], "\n".join(wrong)
    after = await written(hostile.bootstrap, [hostile.topic], hostile.redis_url)
    assert nothing_written(before, after) == []


# --- dates at the edges of the calendar ------------------------------------------------------

EDGE_DAYS = ("0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31")
EDGE_INSTANTS = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-14:00",
)


def edge_requests() -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    for day in EDGE_DAYS:
        for path in ("/v1/relations/CHN/USA/timeline", "/v1/countries/CHN/timeline"):
            out += [
                (path, {"from": day}),
                (path, {"to": day}),
                (path, {"from": day, "to": day, "order": "desc"}),
            ]
        out += [
            ("/v1/visits", {"country": "UKR", "from": day}),
            ("/v1/visits", {"country": "UKR", "to": day}),
            ("/v1/relations/CHN/USA", {"as_of": day}),
            ("/v1/itineraries/li-hui", {"as_of": day}),
        ]
    for instant in EDGE_INSTANTS:
        out += [
            ("/v1/relations/CHN/USA", {"known_at": instant}),
            ("/v1/itineraries/li-hui", {"known_at": instant}),
        ]
    return out


async def test_dates_at_the_edges_of_the_calendar_are_answered_or_refused(
    hostile: Services,
) -> None:
    errors = []
    for path, params in edge_requests():
        response = await hostile.api.get(path, params=params)
        if response.status_code not in (200, 422):
            errors.append(f"{response.status_code} GET {path}?{params}")
    assert errors == [], "\n".join(errors)
