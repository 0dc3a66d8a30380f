"""The operator command line over the real stack (tests/e2e/conftest.py `stack`).

`chancery` runs as a separate process, as an operator runs it. The stack serves ingest over
ASGI only, so this module serves an ingest of its own on a port, on the stack's topic and
Redis database (the same idempotency store), with a key of its own. Then: import the ICEWS
sample, read a relation and an itinerary it implies, follow the stream and resume it from a
printed position, and ask `status`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from chancery.auth import Authenticator, KeyRing, Scope, new_api_key, utcnow
from chancery.settings import IngestSettings
from services.ingest.app import create_app as create_ingest
from tests.e2e.conftest import Stack, serve
from tests.unit.cli.reference import ICEWS, extract

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cli:
    stack: Stack
    env: dict[str, str]
    position: str  # after the ICEWS import

    async def run(
        self, *args: str, key: str | None = None, timeout_s: float = 120
    ) -> tuple[int, str, str]:
        """Run `chancery *args`; API reads use the stack's read key unless `key` is given."""
        env = {**self.env, "CHANCERY_KEY": key or self.stack.keys.read}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            *args,
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            process.kill()  # an open stream would hold the API's shutdown
            await process.wait()
            raise AssertionError(
                f"chancery {' '.join(args)} still running after {timeout_s}s"
            ) from None
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


def _env(stack: Stack, kafka_bootstrap: str, ingest_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANCERY_")}
    env.update(
        {
            "CHANCERY_INGEST_URL": ingest_url,
            "CHANCERY_API_URL": stack.api_url,
            "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CHANCERY_TOPIC": stack.topic,
            "CHANCERY_DEAD_LETTER_TOPIC": f"{stack.topic}.dlq",
            "CHANCERY_REDIS_URL": stack.redis_url,
            "COLUMNS": "160",
        }
    )
    return env


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cli(
    stack: Stack, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cli]:
    now = utcnow()
    key, record = new_api_key("e2e-importer", [Scope.EVENTS_WRITE], now=now)
    authenticator = Authenticator(keys=KeyRing([record]), jwt=None, enabled=True)
    settings = IngestSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic=stack.topic,
        dead_letter_topic=f"{stack.topic}.dlq",
        redis_url=stack.redis_url,
        log_json=False,
    )
    ingest_app = create_ingest(settings, authenticator=authenticator)
    async with serve(ingest_app) as ingest_url:
        env = _env(stack, kafka_bootstrap, ingest_url)
        cli = Cli(stack, env, "")
        path = extract(ICEWS, tmp_path_factory.mktemp("icews"))
        code, out, err = await cli.run("import", "icews", str(path), key=key)
        assert code == 0, err
        assert "  rows imported        1,932" in out
        match = re.search(r"position\s+(\S+)", out)
        assert match, out
        yield Cli(stack, env, match[1])


async def test_a_relation_the_import_implies(cli: Cli) -> None:
    code, out, err = await cli.run("relation", "ukr", "DEU", "--min-position", cli.position)
    assert code == 0, err
    assert "Germany (DEU) ↔ Ukraine (UKR)" in out
    assert re.search(r"last contact\s+visit 2018-06-0[12]", out), out
    code, out, _ = await cli.run("relation", "DEU", "UKR", "--json", "--min-position", cli.position)
    body = json.loads(out)
    assert body["pair"] == "DEU|UKR"
    assert body["event_count"] > 0


async def test_an_itinerary_the_import_implies(cli: Cli) -> None:
    code, out, err = await cli.run("itinerary", "heiko-maas", "--min-position", cli.position)
    assert code == 0, err
    assert out.startswith("Heiko Maas (heiko-maas)")
    assert "trip heiko-maas-2018-06-01: in_progress" in out
    assert re.search(r"Ukraine \(UKR\)\s+Mariupol\s+in_progress", out), out


async def test_tail_follows_and_resumes_from_a_printed_position(cli: Cli) -> None:
    # A position that names partition 0 only: the other partitions start at their beginning,
    # so the stream replays the import (without partition 0's first record).
    start = f"{cli.stack.topic}@0:0"
    args = ("tail", "--json", "--country", "USA", "--type", "visit.leg.started")
    code, out, err = await cli.run(*args, "--from", start, "--limit", "3", timeout_s=60)
    assert code == 0, err
    first = [json.loads(line) for line in out.splitlines()]
    assert len(first) == 3
    assert all(m["data"]["type"] == "diplomacy.visit.leg.started" for m in first)
    assert all(
        "USA" in (m["data"]["data"]["traveller"]["country"], m["data"]["data"]["country"])
        for m in first
    )
    code, out, err = await cli.run(*args, "--from", first[0]["id"], "--limit", "2", timeout_s=60)
    assert code == 0, err
    resumed = [json.loads(line) for line in out.splitlines()]
    # The same events follow, in the same order: no gap, no duplicate. (Their SSE ids may
    # differ: an id also records how far the API scanned past filtered-out events.)
    assert [m["data"]["id"] for m in resumed] == [m["data"]["id"] for m in first[1:]]


async def test_status_sees_the_parts_it_can_reach(cli: Cli) -> None:
    code, out, err = await cli.run("status", "--json")
    body: dict[str, Any] = json.loads(out)
    checks = {c["part"]: c for c in body["checks"]}
    for part in ("ingest", "API", "Kafka", "Redis"):
        assert checks[part]["ok"], checks[part]
    assert body["version"] is not None
    assert sum(p["log_end"] for p in body["partitions"]) >= 2207
    # The stack's projector serves no status page we know the address of.
    assert code == (0 if checks["projector"]["ok"] and checks["deliver"]["ok"] else 1), err


async def test_dlq_replay_lists_then_replays_a_parked_event(cli: Cli) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=cli.env["CHANCERY_KAFKA_BOOTSTRAP_SERVERS"])
    await producer.start()
    try:
        await producer.send_and_wait(cli.stack.topic, b"{not an event", key=b"CHN|USA")
    finally:
        await producer.stop()

    async def listed() -> str:
        for _ in range(100):
            code, out, err = await cli.run("dlq", "replay", "--dry-run")
            assert code == 0, err
            if "would replay 1," in out:
                return out
            await asyncio.sleep(0.2)
        raise AssertionError(f"the poison event was never parked: {out}")

    out = await listed()
    assert re.search(rf"{re.escape(cli.stack.topic)}:\d+@\d+", out), out
    code, out, err = await cli.run("dlq", "replay", "--reason", "undecodable")
    assert code == 0, err
    assert out.strip().endswith(
        f"{cli.stack.topic}.dlq: replayed 1, skipped 0 (not selected or from another topic)"
    )
    # Still poison: the projector parks it again, and only that new copy is pending.
    assert "would replay 1," in await listed()
