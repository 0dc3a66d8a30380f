"""`chancery up`: the whole stack on one machine, and everything stopped on Ctrl-C.

Starts Kafka and Redis (infra/ scripts, state under .chancery/), creates the topics, starts
ingest, projector, API and the webhook delivery worker as child processes, waits for each
/healthz, loads the seeds through ingest, prints the URLs, then waits. On SIGINT or SIGTERM,
or when a child dies, it stops what it started: the services first (newest first), then
Redis and Kafka.

Addresses come from the services' own settings, so one variable means one thing everywhere:
the local broker listens where CHANCERY_KAFKA_BOOTSTRAP_SERVERS points (127.0.0.1:9092),
Redis where CHANCERY_REDIS_URL points (port 6379), and the services on CHANCERY_INGEST_PORT
(8001), CHANCERY_API_PORT (8002), CHANCERY_PROJECTOR_PORT (8003) and CHANCERY_DELIVER_PORT
(8004, the webhook delivery worker). StackSettings adds what only the supervisor needs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Literal, TextIO
from urllib.parse import urlsplit

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chancery.settings import (
    ApiSettings,
    CommonSettings,
    DeliverSettings,
    IngestSettings,
    ProjectorSettings,
)

from .clusters import KAFKA_DIR as KAFKA_CLUSTER_DIR
from .clusters import REDIS_DIR as REDIS_CLUSTER_DIR
from .kafka_cluster import KafkaCluster
from .kafka_server import KafkaServer
from .ports import port_is_free
from .redis_cluster import RedisCluster
from .redis_server import RedisServer
from .scripts import ServerError, StopRequested
from .topics import TopicSpec, ensure_topics_blocking, topics_from_settings

log = logging.getLogger(__name__)

Port = Annotated[int, Field(ge=1, le=65535)]
SeedLoader = Callable[[str], None]
"""Called with ingest's base URL once every service is healthy; raises on failure."""

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})
CHILD_STOP_TIMEOUT_S = 15.0


class StackSettings(BaseSettings):
    """What only `chancery up` needs, from CHANCERY_* variables."""

    model_config = SettingsConfigDict(env_prefix="CHANCERY_", extra="ignore", frozen=True)

    # Kafka, Redis, logs and pid files of the local stack (git-ignored).
    state_dir: Path = Path(".chancery")
    kafka_controller_port: Port = 9093
    # The local Redis keeps its data across restarts in an append-only file.
    redis_persistence: Literal["aof", "none"] = "aof"
    ready_timeout_s: float = Field(default=90.0, gt=0)


class StackError(RuntimeError):
    """The stack cannot start (a port taken, a setting not local, a service unhealthy)."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: Sequence[str]
    health_url: str
    docs_url: str | None = None


@dataclass(frozen=True)
class StackPlan:
    """Every address of the stack, resolved from the settings before anything starts."""

    kafka_port: int
    kafka_controller_port: int
    kafka_bootstrap: str
    redis_port: int
    redis_url: str
    topic: str
    dead_letter_topic: str
    topics: tuple[TopicSpec, ...]
    services: tuple[ServiceSpec, ...]
    state_dir: Path

    @property
    def ports(self) -> dict[str, int]:
        named = {
            "kafka": self.kafka_port,
            "kafka controller": self.kafka_controller_port,
            "redis": self.redis_port,
        }
        for service in self.services:
            port = urlsplit(service.health_url).port
            if port is not None:
                named[service.name] = port
        return named


def _local_port(address: str, what: str, default: int) -> int:
    parts = urlsplit(address if "//" in address else f"//{address}")
    if "," in address or parts.hostname not in LOOPBACK_NAMES:
        msg = f"chancery up runs {what} on 127.0.0.1; {address!r} is not a single local address"
        raise StackError(msg)
    return parts.port or default


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104 - a probe


def plan_stack(
    stack: StackSettings, commands: Mapping[str, Sequence[str]] | None = None
) -> StackPlan:
    common = CommonSettings()
    ingest = IngestSettings()
    api = ApiSettings()
    projector = ProjectorSettings()
    deliver = DeliverSettings()
    python = [sys.executable, "-m"]
    commands = commands or {
        "ingest": [*python, "services.ingest"],
        "projector": [*python, "services.projector"],
        "api": [*python, "services.api"],
        "deliver": [*python, "services.webhooks"],
    }
    ingest_base = f"http://{_probe_host(ingest.host)}:{ingest.port}"
    api_base = f"http://{_probe_host(api.host)}:{api.port}"
    projector_base = f"http://{_probe_host(projector.status_host)}:{projector.status_port}"
    deliver_base = f"http://{_probe_host(deliver.status_host)}:{deliver.status_port}"
    return StackPlan(
        kafka_port=_local_port(common.kafka_bootstrap_servers, "Kafka", 9092),
        kafka_controller_port=stack.kafka_controller_port,
        kafka_bootstrap=common.kafka_bootstrap_servers,
        redis_port=_local_port(common.redis_url, "Redis", 6379),
        redis_url=common.redis_url,
        topic=common.topic,
        dead_letter_topic=common.dead_letter_topic,
        topics=tuple(topics_from_settings(common)),
        services=(
            ServiceSpec(
                "ingest", commands["ingest"], f"{ingest_base}/healthz", f"{ingest_base}/docs"
            ),
            ServiceSpec("projector", commands["projector"], f"{projector_base}/healthz"),
            ServiceSpec("api", commands["api"], f"{api_base}/healthz", f"{api_base}/docs"),
            ServiceSpec("deliver", commands["deliver"], f"{deliver_base}/healthz"),
        ),
        state_dir=stack.state_dir.resolve(),
    )


class _ServiceProcess:
    """A service process in its own process group, with a pid file for `stop_stack`."""

    def __init__(self, spec: ServiceSpec, logs_dir: Path, run_dir: Path) -> None:
        self.spec = spec
        self.log_path = logs_dir / f"{spec.name}.log"
        self.pid_path = run_dir / f"{spec.name}.pid"
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - our own commands, as a list
                list(spec.command),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # pid and start time: `stop_stack` signals only the very process this was.
        self.pid_path.write_text(f"{self.process.pid} {_start_time(self.process.pid)}\n")

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self, timeout_s: float = CHILD_STOP_TIMEOUT_S) -> None:
        """SIGTERM to its process group, SIGKILL after timeout_s; reaps it."""
        pgid = self.process.pid  # start_new_session: the child leads its own group
        if self.process.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %ss: SIGKILL", self.spec.name, timeout_s)
                _signal_group(pgid, signal.SIGKILL)
                self.process.wait()
        # Anything the service itself started in its group goes too.
        _signal_group(pgid, signal.SIGKILL)
        self.pid_path.unlink(missing_ok=True)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie waiting for its parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (main thread only; elsewhere the caller sets it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _wait_healthy(child: _ServiceProcess, timeout_s: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            if stop.is_set():
                raise StopRequested(child.spec.name)
            code = child.exited()
            if code is not None:
                msg = f"{child.spec.name} exited with {code} (see {child.log_path})"
                raise StackError(msg)
            try:
                if client.get(child.spec.health_url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                msg = f"{child.spec.name} not healthy at {child.spec.health_url} after {timeout_s}s"
                raise StackError(msg)
            stop.wait(0.2)


class _LinePrinter:
    """Prints each line at once (flushed), so that the stack's progress shows as it goes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def run_stack(
    stack: StackSettings | None = None,
    *,
    seed_loader: SeedLoader | None = None,
    commands: Mapping[str, Sequence[str]] | None = None,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the stack until SIGINT/SIGTERM (or `stop` is set); return an exit code.

    0 after a requested stop, 1 when the stack could not start or a service died. Whatever
    was started is stopped before returning, services first.
    """
    stack = stack or StackSettings()
    say = _LinePrinter(out or sys.stdout)
    stop = stop or threading.Event()
    try:
        plan = plan_stack(stack, commands)
    except (StackError, ValueError) as exc:
        say(f"chancery up: {exc}")
        return 1
    taken = [f"{name} {port}" for name, port in plan.ports.items() if not port_is_free(port)]
    if taken:
        say(f"chancery up: ports in use: {', '.join(taken)}.")
        say("Another `chancery up`? `make stop` stops what a previous run left behind.")
        return 1

    logs_dir = plan.state_dir / "logs"
    run_dir = plan.state_dir / "run"
    logs_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    kafka = KafkaServer(
        port=plan.kafka_port,
        controller_port=plan.kafka_controller_port,
        data_dir=plan.state_dir / "kafka",
    )
    redis = RedisServer(
        port=plan.redis_port, data_dir=plan.state_dir / "redis", persistence=stack.redis_persistence
    )
    servers: list[KafkaServer | RedisServer] = []
    children: list[_ServiceProcess] = []
    code = 0
    with _stop_on_signals(stop):
        try:
            started = time.monotonic()
            say(f"Starting Kafka on {plan.kafka_bootstrap} and Redis on port {plan.redis_port}")
            for server in (kafka, redis):
                servers.append(server)
                server.start()
            for server in (kafka, redis):
                server.wait_ready(stack.ready_timeout_s, cancel=stop)
            ensure_topics_blocking(plan.kafka_bootstrap, plan.topics)
            say(f"Kafka and Redis ready, topics {plan.topic} and {plan.dead_letter_topic} exist")
            for spec in plan.services:
                if stop.is_set():
                    raise StopRequested(spec.name)
                children.append(_ServiceProcess(spec, logs_dir, run_dir))
            for child in children:
                _wait_healthy(child, stack.ready_timeout_s, stop)
                say(f"{child.spec.name} healthy")
            ingest_base = plan.services[0].health_url.removesuffix("/healthz")
            if seed_loader is not None:
                say("Loading seeds through ingest")
                seed_loader(ingest_base)
            _print_ready(say, plan, logs_dir, time.monotonic() - started)
            code = _watch(children, stop, say)
        except StopRequested:
            say("Stop requested while starting")
        except (ServerError, StackError, TimeoutError, OSError) as exc:
            say(f"chancery up: {exc}")
            code = 1
        except Exception:
            log.exception("chancery up failed")
            code = 1
        finally:
            names = [c.spec.name for c in reversed(children)]
            names += [server.script_name for server in reversed(servers)]
            say("Stopping: " + ", ".join(names))
            _shutdown(children, servers, say)
    return code


def _print_ready(say: _LinePrinter, plan: StackPlan, logs_dir: Path, elapsed: float) -> None:
    say("")
    say(f"Chancery is up ({elapsed:.1f}s):")
    for spec in plan.services:
        say(f"  {spec.name:<10} {spec.docs_url or spec.health_url}")
    say(f"  {'kafka':<10} {plan.kafka_bootstrap}  topic {plan.topic}")
    say(f"  {'redis':<10} {plan.redis_url}")
    say(f"  {'logs':<10} {logs_dir}/")
    say(f"Press Ctrl-C to stop everything (or: kill -TERM {os.getpid()}).")


def _watch(children: Sequence[_ServiceProcess], stop: threading.Event, say: _LinePrinter) -> int:
    while not stop.wait(0.5):
        for child in children:
            code = child.exited()
            if code is not None:
                say(f"{child.spec.name} exited with {code} (see {child.log_path}): stopping")
                return 1
    return 0


def _shutdown(
    children: Sequence[_ServiceProcess],
    servers: Sequence[KafkaServer | RedisServer],
    say: _LinePrinter,
) -> None:
    # Further signals must not interrupt the cleanup; every step below is bounded.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    for child in reversed(children):
        try:
            child.stop()
        except Exception:
            log.exception("stopping %s", child.spec.name)
    for server in reversed(servers):
        try:
            server.stop()
        except ServerError as exc:
            say(f"stopping {server}: {exc}")
    say("Stopped.")


def stop_stack(state_dir: Path = Path(".chancery"), out: TextIO | None = None) -> None:
    """Stop what a `chancery up` that could not clean up left (by pid files, never by name)."""
    say = _LinePrinter(out or sys.stdout)
    run_dir = state_dir / "run"
    for pid_file in sorted(run_dir.glob("*.pid")) if run_dir.is_dir() else []:
        name = pid_file.stem
        try:
            pid_text, started = pid_file.read_text().split()
            pid = int(pid_text)
        except ValueError:
            pid_file.unlink(missing_ok=True)
            continue
        if _alive(pid) and _start_time(pid) == started:
            say(f"stopping {name} (pid {pid})")
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal_group(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
    RedisServer(data_dir=state_dir / "redis").stop()
    KafkaServer(data_dir=state_dir / "kafka").stop()
    # The clusters of start_cluster_servers, when a run used them.
    if (state_dir / REDIS_CLUSTER_DIR).is_dir():
        RedisCluster(data_dir=state_dir / REDIS_CLUSTER_DIR).stop()
    if (state_dir / KAFKA_CLUSTER_DIR).is_dir():
        KafkaCluster(data_dir=state_dir / KAFKA_CLUSTER_DIR).stop()
    say("Stopped.")
