"""What the webhook tests share: a real receiver, the stack with the delivery worker, events.

`Receiver` is a small HTTP server (starlette under uvicorn, in the test's loop) on a port of
its own that can be stopped and started again on the same port (a receiver down, then up),
told to answer 500, and that records every request with the time it arrived. Each request
is checked as a receiver would: its Standard Webhooks signature with the reference library
(`standardwebhooks`), and its CloudEvent with the official SDK (`cloudevents.http.from_http`).

`WebhookStack` is ingest (over ASGI), the live projector and the API (uvicorn) on a fresh
topic and Redis database, the API allowing webhooks to loopback, and an owner key with the
scope `subscriptions:write`. The delivery worker runs as a task (`worker`) or as a real
process (`WorkerProcess`, for SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chancery.auth import Authenticator, KeyRing, Scope, new_api_key
from chancery.contract import decode_event, event_key
from chancery.settings import ApiSettings, DeliverSettings, IngestSettings, ProjectorSettings
from chancery.subscriptions import webhook_id
from services.api.app import create_app as create_api
from services.cli.local import chancery_topics, ensure_topics_blocking, free_ports
from services.ingest.app import create_app as create_ingest
from services.projector.app import run_live
from services.webhooks.app import run as run_worker
from tests.e2e.conftest import QuietServer, post_batch, serve

PARTITIONS = 6
SOURCE = "https://wire.example/webhooks"
LOOPBACK = ["127.0.0.0/8", "::1/128"]
ROOT = Path(__file__).resolve().parents[2]


def meeting(tag: str, i: int, a: str, b: str) -> dict[str, Any]:
    """A two-party meeting; its subject (partition key) is the pair."""
    return {
        "specversion": "1.0",
        "id": f"{tag}-{i}",
        "source": SOURCE,
        "type": "diplomacy.meeting.held",
        "time": "2023-05-12T00:00:00Z",
        "data": {"occurred": "2023-05-11", "parties": [a, b], "mode": "phone"},
    }


# --- the receiver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float  # time.time() on arrival
    event: BaseCloudEvent | None  # as the CloudEvents SDK read the request

    @property
    def event_id(self) -> str:
        assert self.event is not None
        return self.event.get_id()

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Receiver:
    port: int
    secret: str | None = None
    status: int = 200
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _server: QuietServer | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        at = time.time()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.status
        self.received.append(Received(headers, body, status, at, self._check(headers, body)))
        return Response(b"ok" if status < 300 else b"the receiver is failing", status_code=status)

    def _check(self, headers: dict[str, str], body: bytes) -> BaseCloudEvent | None:
        """What any receiver would check (the signature, then the CloudEvent); a failure is
        kept for the test to assert on."""
        try:
            if self.secret is not None:
                Webhook(self.secret).verify(body, headers)
            return from_http_event(HTTPMessage(headers, body))
        except Exception as exc:  # noqa: BLE001 - any refusal is a finding for the test
            self.problems.append(f"{type(exc).__name__}: {exc}")
            return None

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = QuietServer(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        )
        self._task = asyncio.create_task(self._server.serve(), name=f"receiver-{self.port}")
        async with asyncio.timeout(30):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    def delivered(self) -> list[Received]:
        return [r for r in self.received if r.delivered]

    def delivered_ids(self) -> set[str]:
        return {r.webhook_id for r in self.delivered()}

    def bodies_by_id(self) -> dict[str, set[bytes]]:
        by_id: dict[str, set[bytes]] = {}
        for r in self.received:
            by_id.setdefault(r.webhook_id, set()).add(r.body)
        return by_id

    def duplicates(self) -> int:
        counts = Counter(r.webhook_id for r in self.delivered())
        return sum(n - 1 for n in counts.values())

    async def until_delivered(self, wanted: set[str], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                if wanted <= self.delivered_ids():
                    return
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def receiving(secret: str | None = None) -> AsyncIterator[Receiver]:
    (port,) = free_ports(1)
    receiver = Receiver(port, secret)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


def webhook_id_of(event: Mapping[str, Any]) -> str:
    return f"evt_{event_key(str(event['source']), str(event['id']))}"


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class WebhookStack:
    bootstrap: str
    topic: str
    redis_url: str
    api_url: str
    ingest: httpx.AsyncClient
    owner: httpx.AsyncClient  # the API, with a key of scope subscriptions:write
    reader_key: str  # a key with events:read only

    def common(self) -> dict[str, Any]:
        return {
            "kafka_bootstrap_servers": self.bootstrap,
            "topic": self.topic,
            "dead_letter_topic": f"{self.topic}.dlq",
            "redis_url": self.redis_url,
            "log_json": False,
        }

    def deliver_settings(self, **overrides: Any) -> DeliverSettings:
        (port,) = free_ports(1)
        settings: dict[str, Any] = {
            **self.common(),
            "status_port": port,
            "webhook_allowed_networks": LOOPBACK,
            "deliver_poll_s": 0.2,
            "deliver_lease_s": 2.0,
            "deliver_backoff_first_s": 0.05,
            "deliver_backoff_max_s": 0.5,
            "deliver_timeout_s": 5.0,
            **overrides,
        }
        return DeliverSettings(**settings)

    async def post(self, events: Sequence[Mapping[str, Any]]) -> str:
        return await post_batch(self.ingest, events)

    async def log_records(self) -> dict[str, bytes]:
        """webhook-id -> the record's bytes, of everything in the topic (read directly)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found: dict[str, bytes] = {}
            async with asyncio.timeout(30):
                while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                    for records in (await consumer.getmany(timeout_ms=200)).values():
                        for record in records:
                            event = decode_event(record.value)
                            found[webhook_id(event.key)] = record.value
            return found
        finally:
            await consumer.stop()

    async def subscribe(self, url: str, **body: Any) -> dict[str, Any]:
        response = await self.owner.post("/v1/subscriptions", json={"url": url, **body})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        response = await self.owner.get(f"/v1/subscriptions/{subscription_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def deliveries(self, subscription_id: str, limit: int = 100) -> list[dict[str, Any]]:
        response = await self.owner.get(
            f"/v1/subscriptions/{subscription_id}/deliveries", params={"limit": limit}
        )
        assert response.status_code == 200, response.text
        attempts: list[dict[str, Any]] = response.json()["deliveries"]
        return attempts


@contextlib.asynccontextmanager
async def webhook_stack(bootstrap: str, redis_url: str) -> AsyncIterator[WebhookStack]:
    topic = f"hooks.{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(
        ensure_topics_blocking,
        bootstrap,
        chancery_topics(topic, f"{topic}.dlq", partitions=PARTITIONS),
    )
    now = datetime.now(UTC)
    owner, owner_record = new_api_key("hooks-owner", [Scope.SUBSCRIPTIONS_WRITE], now=now)
    writer, writer_record = new_api_key("hooks-writer", [Scope.EVENTS_WRITE], now=now)
    reader, reader_record = new_api_key("hooks-reader", [Scope.EVENTS_READ], now=now)
    authenticator = Authenticator(
        keys=KeyRing([owner_record, writer_record, reader_record]), jwt=None, enabled=True
    )
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "topic": topic,
        "dead_letter_topic": f"{topic}.dlq",
        "redis_url": redis_url,
        "log_json": False,
    }
    (status_port,) = free_ports(1)
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_live(
            ProjectorSettings(
                **common, group_id=f"hooks-{topic}", status_port=status_port, fetch_timeout_ms=50
            ),
            stop,
        ),
        name="hooks-projector",
    )
    ingest_app = create_ingest(IngestSettings(**common), authenticator=authenticator)
    api_app = create_api(
        ApiSettings(**common, webhook_allowed_networks=LOOPBACK), authenticator=authenticator
    )
    try:
        async with (
            ingest_app.router.lifespan_context(ingest_app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=ingest_app),
                base_url="http://ingest",
                headers={"Authorization": f"Bearer {writer}"},
                timeout=30,
            ) as ingest,
            serve(api_app) as api_url,
            httpx.AsyncClient(
                base_url=api_url, headers={"Authorization": f"Bearer {owner}"}, timeout=30
            ) as owner_client,
        ):
            async with asyncio.timeout(90):
                while (await owner_client.get("/readyz")).status_code != 200:
                    if projector.done():
                        projector.result()
                    await asyncio.sleep(0.1)
            yield WebhookStack(bootstrap, topic, redis_url, api_url, ingest, owner_client, reader)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(projector, 30)


@contextlib.asynccontextmanager
async def worker(settings: DeliverSettings) -> AsyncIterator[asyncio.Task[None]]:
    """The delivery worker as a task in the test's loop, stopped gracefully at the end."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop), name="deliver")
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class WorkerProcess:
    """`python -m services.webhooks` as a real process, to be killed with SIGKILL."""

    def __init__(self, settings: DeliverSettings, log_path: Path) -> None:
        env = {**os.environ}
        for name, value in settings.model_dump().items():
            if value is None:
                continue
            alias = DeliverSettings.model_fields[name].validation_alias
            variable = alias if isinstance(alias, str) else f"CHANCERY_{name.upper()}"
            env[variable] = json.dumps(value) if isinstance(value, list) else str(value)
        self._env = env
        self._log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self._log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.webhooks"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        assert code is None, f"the worker exited with {code}: {self._log_path.read_text()[-3000:]}"
