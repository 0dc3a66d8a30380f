"""The three services as processes of their own, as `chancery up` runs them, against the
session's Kafka and Redis: for tests that stop and start a service (the API restarted under
a subscriber) or change what a running service reads (the keys file).

`running_services(...)` makes a topic and takes a Redis database, writes a keys file with a
reading key, a writing key and one that may do both, starts `python -m services.ingest`,
`.projector` and `.api` on free loopback ports, and waits until the API is ready (the
projector has marked the read models ready). `Services.restart("api")` stops a service with
SIGTERM (SIGKILL if it does not go) and starts it again on the same port. Each process's
output goes to a log file, whose end a failure shows. Every process is stopped, by its own
pid, on the way out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chancery.auth import KeyRing, Scope, new_api_key, utcnow
from services.cli.local import chancery_topics, ensure_topics_blocking, free_ports

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 6
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
MODULES = {"ingest": "services.ingest", "projector": "services.projector", "api": "services.api"}


class ServiceFailed(AssertionError):
    pass


@dataclass
class Services:
    topic: str
    env: dict[str, str]
    ingest_url: str
    api_url: str
    keys_file: Path
    read_key: str
    write_key: str
    key: str
    """May read and write."""
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", MODULES[name]],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)
        self.wait_ready(name)

    def alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ServiceFailed(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, name: str) -> None:
        """Until the service answers: ingest its /healthz, the API its /readyz (200 once
        the projector has marked the read models ready)."""
        url = {"ingest": f"{self.ingest_url}/healthz", "api": f"{self.api_url}/readyz"}[name]
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.alive()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise ServiceFailed(f"{name} not ready within {START_TIMEOUT_S} s:\n{self.tail(name)}")

    def stop_all(self) -> None:
        for name in ("api", "projector", "ingest"):
            self.stop(name)


@contextlib.contextmanager
def running_services(
    kafka_bootstrap: str,
    redis_url: str,
    workdir: Path,
    *,
    topic: str | None = None,
    **settings: str,
) -> Iterator[Services]:
    """The three services on a fresh topic (unless named) and `redis_url` (a database of
    the test's own)."""
    topic = topic or f"e2e.proc.{uuid.uuid4().hex[:10]}"
    ensure_topics_blocking(
        kafka_bootstrap, chancery_topics(topic, f"{topic}.dlq", partitions=PARTITIONS)
    )
    keys_file = workdir / "api-keys.json"
    now = utcnow()
    read_key, read_record = new_api_key("e2e-reader", [Scope.EVENTS_READ], now=now)
    write_key, write_record = new_api_key("e2e-writer", [Scope.EVENTS_WRITE], now=now)
    key, record = new_api_key("e2e-both", [Scope.EVENTS_READ, Scope.EVENTS_WRITE], now=now)
    KeyRing([read_record, write_record, record]).save(keys_file)
    ingest_port, api_port, projector_port = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANCERY_")}
    env.update(
        {
            "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CHANCERY_TOPIC": topic,
            "CHANCERY_DEAD_LETTER_TOPIC": f"{topic}.dlq",
            "CHANCERY_REDIS_URL": redis_url,
            "CHANCERY_GROUP_ID": f"e2e-{topic}",
            "CHANCERY_INGEST_PORT": str(ingest_port),
            "CHANCERY_API_PORT": str(api_port),
            "CHANCERY_PROJECTOR_PORT": str(projector_port),
            "CHANCERY_API_KEYS_FILE": str(keys_file),
            "CHANCERY_LOG_JSON": "false",
            "CHANCERY_LOG_LEVEL": "WARNING",
            "CHANCERY_STREAM_PING_S": "0.5",
            "CHANCERY_FETCH_TIMEOUT_MS": "50",
            **{f"CHANCERY_{k.upper()}": v for k, v in settings.items()},
        }
    )
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    services = Services(
        topic=topic,
        env=env,
        ingest_url=f"http://127.0.0.1:{ingest_port}",
        api_url=f"http://127.0.0.1:{api_port}",
        keys_file=keys_file,
        read_key=read_key,
        write_key=write_key,
        key=key,
        logs=logs,
    )
    try:
        for name in ("ingest", "projector", "api"):
            services.start(name)
        services.wait_ready("ingest")
        services.wait_ready("api")
        yield services
    finally:
        services.stop_all()
