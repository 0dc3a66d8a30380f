"""Webhook delivery beside the live stream (SSE), of the same events, at 1,000 events/s.

One stack, each service its own process as in production: ingest, the live projector, the
API and `chancery deliver`, on Kafka and Redis from the benchmark framework. A subscription
to every event POSTs to a local receiver (a bare asyncio HTTP/1.1 server answering 204, so
the receiver costs little of the two shared CPUs); an SSE client reads `/v1/stream` at the
same time. The receiver runs in a process of its own: a real receiver is another system, and
in the load generator's process its answers waited behind the posting and the SSE client's
reading, which the worker then counted as its own latency. The load is posted through ingest
in batches of 10 every 10 ms for the run's length, over 20 subjects (pairs), so the worker
delivers subjects in parallel. The load generator and the SSE client are aiohttp's: with
httpx's (a write for the head and another for the body of each request) the generator's
process took twice the CPU, on the two cores that the services share.

Latency of each path: from the event's `recordedtime` (when ingest accepted it: both paths
start from the same instant, on the same clock) to its arrival at the receiver, or at the
SSE client. The webhook path reads Kafka directly; SSE follows the projector's applied
stream in Redis. Target: webhook p99 under 100 ms at 1,000 events/s, every event delivered.
Throughput: events delivered per second of the run (first post to last arrival).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import aiohttp
import httpx
import redis

from chancery.auth import KeyRing, Scope, new_api_key
from services.cli.local import free_ports

from .bench_api import _start, _wait_http
from .framework import BenchEnv, Row, percentile, process_cpu_s

NAME = "webhooks"
SOURCE = "https://bench.example/webhooks"
RATE = 1000
BATCH = 10
PAIRS = [
    (a, b)
    for a, b in zip(
        ["CHN", "USA", "FRA", "DEU", "IND", "BRA", "JPN", "KOR", "EGY", "TUR"],
        ["RUS", "GBR", "ITA", "ESP", "PAK", "ARG", "AUS", "CAN", "ISR", "GRC"],
        strict=True,
    )
] + [("CHN", "USA"), ("FRA", "DEU"), ("IND", "CHN"), ("BRA", "USA"), ("JPN", "CHN"),
     ("KOR", "USA"), ("EGY", "SAU"), ("TUR", "RUS"), ("IRN", "SAU"), ("MEX", "USA")]  # fmt: skip


@dataclass
class Stack:
    ingest_url: str
    api_url: str
    deliver_pid: int
    read_key: str
    write_key: str
    owner_key: str


@contextlib.contextmanager
def stack(env: BenchEnv, db: int) -> Iterator[Stack]:
    topic = env.new_topic(NAME)
    redis_url = env.redis_db(db)
    redis.Redis.from_url(redis_url).flushdb()
    workdir = env.workdir / f"webhooks-{db}"
    workdir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    read_key, read_record = new_api_key("bench-reader", [Scope.EVENTS_READ], now=now)
    write_key, write_record = new_api_key("bench-writer", [Scope.EVENTS_WRITE], now=now)
    owner_key, owner_record = new_api_key("bench-owner", [Scope.SUBSCRIPTIONS_WRITE], now=now)
    keys_file = workdir / "api-keys.json"
    KeyRing([read_record, write_record, owner_record]).save(keys_file)
    ingest_port, api_port, projector_port, deliver_port = free_ports(4)
    common = {
        **os.environ,
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": env.kafka_bootstrap,
        "CHANCERY_TOPIC": topic,
        "CHANCERY_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "CHANCERY_REDIS_URL": redis_url,
        "CHANCERY_API_KEYS_FILE": str(keys_file),
        "CHANCERY_LOG_LEVEL": "WARNING",
        "CHANCERY_INGEST_PORT": str(ingest_port),
        "CHANCERY_API_PORT": str(api_port),
        "CHANCERY_PROJECTOR_PORT": str(projector_port),
        "CHANCERY_DELIVER_PORT": str(deliver_port),
        "CHANCERY_GROUP_ID": f"bench-{topic}",
        "CHANCERY_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "CHANCERY_DELIVER_POLL_S": "0.5",
    }
    python = sys.executable
    processes = {
        "projector": _start([python, "-m", "services.projector"], common, workdir / "p.log"),
        "ingest": _start([python, "-m", "services.ingest"], common, workdir / "i.log"),
        "api": _start([python, "-m", "services.api"], common, workdir / "a.log"),
        "deliver": _start([python, "-m", "services.webhooks"], common, workdir / "d.log"),
    }
    try:
        ingest_url = f"http://127.0.0.1:{ingest_port}"
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{ingest_url}/healthz", processes["ingest"])
        _wait_http(f"http://127.0.0.1:{deliver_port}/healthz", processes["deliver"])
        _wait_http(f"{api_url}/readyz", processes["api"], timeout_s=120)
        yield Stack(ingest_url, api_url, processes["deliver"].pid, read_key, write_key, owner_key)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(15)
            except Exception:  # noqa: BLE001 - whatever it is, it goes
                process.kill()
                process.wait()


# --- the receiver: a bare HTTP/1.1 server that keeps arrival times --------------------------------


@dataclass
class Arrivals:
    """Per event id: when it first arrived, and the recordedtime it carries."""

    first: dict[str, tuple[float, float]] = field(default_factory=dict)
    count: int = 0

    def add(self, body: bytes, at: float) -> None:
        self.count += 1
        event = json.loads(body)
        if event["id"] not in self.first:
            recorded = datetime.fromisoformat(event["recordedtime"]).timestamp()
            self.first[event["id"]] = (at, recorded)

    def latencies_ms(self) -> list[float]:
        return [(at - recorded) * 1000 for at, recorded in self.first.values()]


class Receiver:
    """The server and its open connections: `close` hangs up on each, so every handler ends
    on its own (end of stream) instead of being cancelled when the loop shuts down."""

    def __init__(self, arrivals: Arrivals, port: int) -> None:
        self.arrivals = arrivals
        self.port = port
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._handlers.values():
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                at = time.time()
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                self.arrivals.add(body, at)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            del self._handlers[task]
            writer.close()


def _serve_receiver(port: int, received: Synchronized[int], control: Connection) -> None:
    """The receiver process: serves until told to stop, then sends back what arrived."""

    async def serve() -> None:
        arrivals = Arrivals()
        receiver = Receiver(arrivals, port)
        await receiver.start()
        control.send("ready")
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        loop.add_reader(control.fileno(), stopped.set)
        while not stopped.is_set():
            received.value = len(arrivals.first)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), 0.05)
        loop.remove_reader(control.fileno())
        control.recv()
        await receiver.close()
        control.send((arrivals.first, arrivals.count))

    asyncio.run(serve())


class ReceiverProcess:
    """The receiver in a process of its own, as a real receiver is another system: its
    answers do not wait behind the load generator and the SSE client."""

    def __init__(self) -> None:
        (self.port,) = free_ports(1)
        context = multiprocessing.get_context("spawn")
        self._received = context.Value("q", 0, lock=False)
        self._control, child = context.Pipe()
        self._process = context.Process(
            target=_serve_receiver, args=(self.port, self._received, child), daemon=True
        )

    @property
    def received(self) -> int:
        """Distinct events received so far (as of the last 50 ms)."""
        return int(self._received.value)

    def start(self) -> None:
        self._process.start()
        if not self._control.poll(60) or self._control.recv() != "ready":
            raise RuntimeError("the receiver did not start")

    def stop(self) -> Arrivals:
        """Stops the receiver; what it received."""
        self._control.send("stop")
        first, count = self._control.recv()
        self._process.join(10)
        return Arrivals(first, count)

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


async def sse_reader(url: str, key: str, arrivals: Arrivals, ready: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as client,
        client.get(f"{url}/v1/stream", headers=headers) as response,
    ):
        response.raise_for_status()
        ready.set()
        async for line in response.content:
            if line.startswith(b"data: "):
                arrivals.add(line[6:], time.time())


async def post_batch(client: aiohttp.ClientSession, events: list[dict[str, Any]]) -> None:
    async with client.post("/v1/events/batch", data=json.dumps(events).encode()) as response:
        if response.status != 202:
            text = await response.text()
            raise RuntimeError(f"ingest answered {response.status}: {text[:500]}")
        await response.read()


# --- the run -----------------------------------------------------------------------------------


def meeting(event_id: str, a: str, b: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": "diplomacy.meeting.held",
        "time": "2023-05-12T00:00:00Z",
        "data": {"occurred": "2023-05-11", "parties": [a, b], "mode": "phone"},
    }


async def measure(s: Stack, quick: bool) -> list[Row]:
    hooks = ReceiverProcess()
    hooks.start()
    try:
        return await _measure(s, quick, hooks)
    finally:
        hooks.kill()


async def _measure(s: Stack, quick: bool, hooks: ReceiverProcess) -> list[Row]:
    duration_s = 10 if quick else 30
    streamed = Arrivals()
    owner = {"Authorization": f"Bearer {s.owner_key}"}
    async with httpx.AsyncClient(base_url=s.api_url, headers=owner, timeout=30) as api:
        created = await api.post(
            "/v1/subscriptions", json={"url": f"http://127.0.0.1:{hooks.port}/hook"}
        )
        if created.status_code != 201:
            raise RuntimeError(f"subscription refused: {created.text}")
    ready = asyncio.Event()
    sse = asyncio.create_task(sse_reader(s.api_url, s.read_key, streamed, ready))
    await ready.wait()
    await asyncio.sleep(2)  # the worker picks the subscription up (it polls)
    total = RATE * duration_s
    cpu_before = process_cpu_s(s.deliver_pid)
    writer = {
        "Authorization": f"Bearer {s.write_key}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    async with aiohttp.ClientSession(
        s.ingest_url, headers=writer, timeout=aiohttp.ClientTimeout(total=30)
    ) as ingest:
        began = time.perf_counter()
        wall_began = time.time()
        # Open loop: each batch leaves on its schedule, whether or not the one before was
        # answered (a closed loop would offer less whenever ingest slows down).
        posts: set[asyncio.Task[None]] = set()
        for n in range(total // BATCH):
            due = began + n * BATCH / RATE
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            events = [
                meeting(f"w{n}-{i}", *PAIRS[(n * BATCH + i) % len(PAIRS)]) for i in range(BATCH)
            ]
            posts.add(asyncio.create_task(post_batch(ingest, events)))
            for done in [t for t in posts if t.done()]:
                posts.discard(done)
                done.result()  # ingest refused a batch: the run is void
        offered_s = time.perf_counter() - began
        for answered in await asyncio.gather(*posts, return_exceptions=True):
            if isinstance(answered, BaseException):
                raise answered
    try:
        async with asyncio.timeout(120):
            while True:
                if hooks.received >= total and len(streamed.first) >= total:
                    break
                await asyncio.sleep(0.1)
    except TimeoutError:
        received = hooks.received
        async with httpx.AsyncClient(base_url=s.api_url, headers=owner, timeout=30) as api:
            sid = created.json()["id"]
            print(json.dumps((await api.get(f"/v1/subscriptions/{sid}")).json(), indent=1))
            attempts = (await api.get(f"/v1/subscriptions/{sid}/deliveries?limit=100")).json()
            failed = [a for a in attempts["deliveries"] if a["outcome"] != "delivered"]
            print(json.dumps(failed[:5], indent=1))
        raise RuntimeError(
            f"of {total:,} events, {received:,} came by webhook and "
            f"{len(streamed.first):,} by SSE within 120 s of the load's end"
        ) from None
    cpu = process_cpu_s(s.deliver_pid) - cpu_before
    hooked = hooks.stop()
    sse.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sse

    def rate(arrivals: Arrivals) -> float:
        last = max(at for at, _ in arrivals.first.values())
        return len(arrivals.first) / (last - wall_began)

    hook_ms, sse_ms = hooked.latencies_ms(), streamed.latencies_ms()
    p99 = percentile(hook_ms, 99)
    note = (
        f"{total:,} events offered at {total / offered_s:,.0f}/s; the receiver got "
        f"{hooked.count - len(hooked.first)} duplicate(s); baseline = SSE of the same events"
    )
    return [
        Row(NAME, "delivered, events/s", "events/s", rate(streamed), rate(hooked),
            ">= 1,000/s offered", rate(hooked) >= 0.95 * RATE, note),
        Row(NAME, "recorded -> received p50", "ms", percentile(sse_ms, 50),
            percentile(hook_ms, 50), "context"),
        Row(NAME, "recorded -> received p99", "ms", percentile(sse_ms, 99), p99,
            "< 100 ms", p99 < 100),
        Row(NAME, "worker CPU per event", "us", None, cpu / total * 1e6, "context"),
    ]  # fmt: skip


def run(env: BenchEnv, *, quick: bool = False) -> list[Row]:
    with stack(env, 14) as s:
        return asyncio.run(measure(s, quick))
