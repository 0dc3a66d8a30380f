"""`python -m services.ingest` as a real process: granian serving the app that the other
suites serve in-process with uvicorn.

What the HTTP server itself decides is checked here, with the hostile requests of the
reliability suite (tests/reliability/test_hostile_input.py): framing its parser refuses (a
400 of its own), bodies it hands on in pieces (chunked, slow, overstated, oversize), all
refused as they are under uvicorn, with nothing appended. One case differs, within what HTTP
allows: a request framed both by Content-Length and by Transfer-Encoding (see `_wrong`).
Then one event in each content mode is accepted, and SIGTERM stops the server cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from cloudevents.core.bindings.http import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from services.cli.local import free_ports
from tests.integration.test_ingest import ids_in, read_topic, writer_key
from tests.reliability.test_hostile_input import BODY_LIMIT, BODY_TIMEOUT_S, hostile_bodies
from tests.reliability.wire import RawResponse, chunked, exchange, request_head
from tests.unit.ingest.support import make_event

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def _framed(
    url: str, key: str, path: str, content_type: str, framing: str, parts: list[bytes]
) -> tuple[bytes, list[bytes]]:
    """The head and body parts of one hostile request (as test_hostile_input frames them)."""
    headers = [("Authorization", f"Bearer {key}")]
    if content_type:
        headers.append(("Content-Type", content_type))
    if framing == "length":
        headers.append(("Content-Length", str(sum(len(p) for p in parts))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        parts = chunked(*parts)
    elif framing == "chunked-raw":
        headers.append(("Transfer-Encoding", "chunked"))
    elif framing == "both":
        headers += [("Content-Length", "5"), ("Transfer-Encoding", "chunked")]
    else:
        headers.append(("Content-Length", framing))
    return request_head("POST", path, url.removeprefix("http://"), headers), parts


def _wrong(name: str, response: RawResponse, expected: frozenset[int], by_parser: bool) -> str:
    if "smuggling" in name and response.headers.get("connection") == "close":
        # Both Content-Length and Transfer-Encoding: uvicorn refuses the request (400);
        # granian takes the other course RFC 9112 (6.3) allows, the body as Transfer-Encoding
        # frames it and the connection closed after the answer. Either leaves nothing after
        # the body for a second request to hide in.
        expected = expected | {202}
    if response.status not in expected:
        return f"{name}: {response.status}, expected {sorted(expected)}: {response.body[:200]!r}"
    refused_by_app = response.headers.get("content-type") == PROBLEM
    if not by_parser and not refused_by_app:
        return f"{name}: not a problem response: {response.headers}"
    return ""


@pytest.mark.timeout(300)
async def test_the_served_process_refuses_hostile_requests_as_uvicorn_does_and_stops_cleanly(
    chancery_env: dict[str, str], kafka_bootstrap: str, kafka_topic: str, tmp_path: Path
) -> None:
    keys_file, key = writer_key(tmp_path)
    (port,) = free_ports(1)
    env = {
        **os.environ,
        **chancery_env,
        "CHANCERY_API_KEYS_FILE": str(keys_file),
        "CHANCERY_INGEST_PORT": str(port),
        "CHANCERY_MAX_BODY_BYTES": str(BODY_LIMIT),
        "CHANCERY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "CHANCERY_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ingest",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wrong: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            async with asyncio.timeout(120):
                while True:
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.2)
            for case in hostile_bodies():
                head, parts = _framed(
                    url, key, case.path, case.content_type, case.framing, case.parts
                )
                try:
                    response = await exchange(url, head, parts, pause_s=case.pause_s)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    wrong.append(f"{case.name}: no answer ({exc!r})")
                    continue
                wrong.append(_wrong(case.name, response, case.expected, case.by_parser))
            refused = await read_topic(kafka_bootstrap, kafka_topic)

            structured = make_event(id_="served-structured")
            binary = make_event(id_="served-binary", subject="Vienna talks, 10 and 11 May")
            attributes = {k: v for k, v in binary.items() if k != "data"}
            attributes["time"] = datetime.fromisoformat(attributes["time"])
            message = to_binary(CloudEvent(attributes, binary["data"]), JSONFormat())
            auth = {"Authorization": f"Bearer {key}"}
            answers = [
                await client.post(
                    "/v1/events",
                    headers={**auth, "Content-Type": "application/cloudevents+json"},
                    content=json.dumps(structured),
                ),
                await client.post(
                    "/v1/events", headers={**auth, **message.headers}, content=message.body
                ),
            ]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        async with asyncio.timeout(60):
            _, err = await process.communicate()
    stderr = err.decode(errors="replace")

    assert [w for w in wrong if w] == [], stderr[-2000:]
    assert ids_in(refused) in ([], ["hostile"])  # the one the smuggling case may send
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    logged = ids_in(await read_topic(kafka_bootstrap, kafka_topic))
    assert sorted(set(logged) - {"hostile"}) == ["served-binary", "served-structured"]
    assert process.returncode == 0, stderr[-2000:]
