"""`chancery up`: the whole stack on one machine, and everything stopped on Ctrl-C.

Starts Kafka and Redis (infra/ scripts, state under .chancery/), creates the topics, starts
ingest, projector, API and the webhook delivery worker as child processes, waits for each
/healthz, loads the seeds through ingest, prints the URLs, then waits. On SIGINT, SIGTERM or
SIGHUP (a closed terminal), or when a child dies, it stops what it started: the services
first (newest first), then Redis and Kafka. Killed outright, it still leaves nothing
behind: see tether.py.

`chancery up --cluster` (`make run-cluster`) does the same on three Kafka nodes (clients on
9092, 9094, 9096) and a Redis Cluster of three masters and three replicas (7000-7005): the
topics get three replicas and min.insync.replicas=2, and the services are told so
(CHANCERY_KAFKA_BOOTSTRAP_SERVERS, CHANCERY_REDIS_URL, CHANCERY_REDIS_CLUSTER and the
topic's durability, whatever the environment says), on their usual ports.

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
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated, Literal, TextIO
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator

from chancery.settings import (
    ApiSettings,
    ChancerySettings,
    CommonSettings,
    DeliverSettings,
    IngestSettings,
    ProjectorSettings,
)
from services.platform.topics import TopicSpec, ensure_topics_blocking, topics_from_settings

from .clusters import KAFKA_DIR as KAFKA_CLUSTER_DIR
from .clusters import REDIS_DIR as REDIS_CLUSTER_DIR
from .kafka_cluster import (
    CLUSTER_MIN_INSYNC_REPLICAS,
    CLUSTER_REPLICATION_FACTOR,
    KafkaCluster,
)
from .kafka_cluster import DEFAULT_CONTROLLER_PORTS as KAFKA_CLUSTER_CONTROLLER_PORTS
from .kafka_cluster import DEFAULT_PORTS as KAFKA_CLUSTER_PORTS
from .kafka_server import KafkaServer
from .ports import port_is_free
from .redis_cluster import DEFAULT_PORTS as REDIS_CLUSTER_PORTS
from .redis_cluster import RedisCluster
from .redis_server import RedisServer
from .scripts import ServerError, StopRequested
from .tether import Watchdog, die_with_parent

log = logging.getLogger(__name__)

Port = Annotated[int, Field(ge=1, le=65535)]
SeedLoader = Callable[[str], None]
"""Called with ingest's base URL once every service is healthy; raises on failure."""

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})
CHILD_STOP_TIMEOUT_S = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The variable that moves each port of the stack, for the message when one is taken.
PORT_VARIABLES = {
    "kafka": "CHANCERY_KAFKA_BOOTSTRAP_SERVERS",
    "kafka controller": "CHANCERY_KAFKA_CONTROLLER_PORT",
    "redis": "CHANCERY_REDIS_URL",
    "ingest": "CHANCERY_INGEST_PORT",
    "projector": "CHANCERY_PROJECTOR_PORT",
    "api": "CHANCERY_API_PORT",
    "deliver": "CHANCERY_DELIVER_PORT",
}
CLUSTER_READY_TIMEOUT_S = 180.0
"""At least this long for the clusters to serve: three JVMs start slowly on a small machine."""
REDIS_BUS_OFFSET = 10_000
"""A Redis Cluster node's bus port is its port plus this, unless given."""

Server = KafkaServer | RedisServer | KafkaCluster | RedisCluster


class StackSettings(ChancerySettings):
    """What only `chancery up` needs, from CHANCERY_* variables (or `.env`)."""

    # Kafka, Redis, logs and pid files of the local stack (git-ignored).
    state_dir: Path = Path(".chancery")
    kafka_controller_port: Port = 9093
    # The local Redis keeps its data across restarts in an append-only file.
    redis_persistence: Literal["aof", "none"] = "aof"
    ready_timeout_s: float = Field(default=90.0, gt=0)
    # `chancery up --cluster`: the three Kafka nodes' client and controller ports, the six
    # Redis Cluster nodes' ports, and their bus ports (empty: each node's port + 10000).
    kafka_cluster_ports: tuple[Port, Port, Port] = KAFKA_CLUSTER_PORTS
    kafka_cluster_controller_ports: tuple[Port, Port, Port] = KAFKA_CLUSTER_CONTROLLER_PORTS
    redis_cluster_ports: tuple[Port, Port, Port, Port, Port, Port] = REDIS_CLUSTER_PORTS
    redis_cluster_bus_ports: tuple[Port, Port, Port, Port, Port, Port] | None = None

    @field_validator("redis_cluster_bus_ports", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class StackError(RuntimeError):
    """The stack cannot start (a port taken, a setting not local, a service unhealthy)."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: Sequence[str]
    health_url: str
    docs_url: str | None = None
    """What `chancery up` prints for it: its OpenAPI docs, or the projector's /status."""


@dataclass(frozen=True)
class StackPlan:
    """Every address of the stack, resolved from the settings before anything starts."""

    kafka_bootstrap: str
    redis_url: str
    topic: str
    dead_letter_topic: str
    topics: tuple[TopicSpec, ...]
    services: tuple[ServiceSpec, ...]
    state_dir: Path
    servers: tuple[Server, ...]
    """Kafka, then Redis (started in this order, stopped in the reverse)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """What the services are given beyond the environment (on the clusters: where they are)."""
    ready_timeout_s: float = 90.0

    @property
    def cluster(self) -> bool:
        return any(isinstance(server, KafkaCluster | RedisCluster) for server in self.servers)

    @property
    def ports(self) -> dict[str, int]:
        named: dict[str, int] = {}
        for server in self.servers:
            named.update(_server_ports(server))
        for service in self.services:
            port = urlsplit(service.health_url).port
            if port is not None:
                named[service.name] = port
        return named


def _server_ports(server: Server) -> dict[str, int]:
    if isinstance(server, KafkaServer):
        return {"kafka": server.port, "kafka controller": server.controller_port}
    if isinstance(server, RedisServer):
        return {"redis": server.port}
    if isinstance(server, KafkaCluster):
        return {
            **{f"kafka node {n}": p for n, p in enumerate(server.ports, start=1)},
            **{f"kafka controller {n}": p for n, p in enumerate(server.controller_ports, 1)},
        }
    bus = server.bus_ports or tuple(p + REDIS_BUS_OFFSET for p in server.ports)
    return {
        **{f"redis node {n}": p for n, p in enumerate(server.ports, start=1)},
        **{f"redis bus {n}": p for n, p in enumerate(bus, start=1)},
    }


def _local_port(address: str, what: str, default: int) -> int:
    parts = urlsplit(address if "//" in address else f"//{address}")
    if "," in address or parts.hostname not in LOOPBACK_NAMES:
        msg = f"chancery up runs {what} on 127.0.0.1; {address!r} is not a single local address"
        raise StackError(msg)
    return parts.port or default


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104 - a probe


def plan_stack(
    stack: StackSettings,
    commands: Mapping[str, Sequence[str]] | None = None,
    *,
    cluster: bool = False,
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
    services = (
        ServiceSpec("ingest", commands["ingest"], f"{ingest_base}/healthz", f"{ingest_base}/docs"),
        ServiceSpec(
            "projector",
            commands["projector"],
            f"{projector_base}/healthz",
            f"{projector_base}/status",
        ),
        ServiceSpec("api", commands["api"], f"{api_base}/healthz", f"{api_base}/docs"),
        ServiceSpec("deliver", commands["deliver"], f"{deliver_base}/healthz"),
    )
    state_dir = stack.state_dir.resolve()
    if cluster:
        return _plan_clusters(stack, common, services, state_dir)
    kafka = KafkaServer(
        port=_local_port(common.kafka_bootstrap_servers, "Kafka", 9092),
        controller_port=stack.kafka_controller_port,
        data_dir=state_dir / "kafka",
    )
    redis = RedisServer(
        port=_local_port(common.redis_url, "Redis", 6379),
        data_dir=state_dir / "redis",
        persistence=stack.redis_persistence,
    )
    return StackPlan(
        kafka_bootstrap=common.kafka_bootstrap_servers,
        redis_url=common.redis_url,
        topic=common.topic,
        dead_letter_topic=common.dead_letter_topic,
        topics=tuple(topics_from_settings(common)),
        services=services,
        state_dir=state_dir,
        servers=(kafka, redis),
        ready_timeout_s=stack.ready_timeout_s,
    )


def _plan_clusters(
    stack: StackSettings,
    common: CommonSettings,
    services: tuple[ServiceSpec, ...],
    state_dir: Path,
) -> StackPlan:
    """Three Kafka nodes and a Redis Cluster on the ports of `stack`, and the settings that
    point the services at them (the topic made to survive one node)."""
    kafka = KafkaCluster(
        data_dir=state_dir / KAFKA_CLUSTER_DIR,
        ports=stack.kafka_cluster_ports,
        controller_ports=stack.kafka_cluster_controller_ports,
    )
    redis = RedisCluster(
        data_dir=state_dir / REDIS_CLUSTER_DIR,
        ports=stack.redis_cluster_ports,
        bus_ports=stack.redis_cluster_bus_ports,
        persistence=stack.redis_persistence,
    )
    redis_url = f"redis://127.0.0.1:{redis.ports[0]}/0"
    durable = common.model_copy(
        update={
            "kafka_bootstrap_servers": kafka.bootstrap_servers,
            "redis_url": redis_url,
            "redis_cluster": True,
            "replication_factor": CLUSTER_REPLICATION_FACTOR,
            "min_insync_replicas": CLUSTER_MIN_INSYNC_REPLICAS,
        }
    )
    env = {
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CHANCERY_REDIS_URL": redis_url,
        "CHANCERY_REDIS_CLUSTER": "true",
        "CHANCERY_REPLICATION_FACTOR": str(CLUSTER_REPLICATION_FACTOR),
        "CHANCERY_MIN_INSYNC_REPLICAS": str(CLUSTER_MIN_INSYNC_REPLICAS),
    }
    return StackPlan(
        kafka_bootstrap=kafka.bootstrap_servers,
        redis_url=redis_url,
        topic=common.topic,
        dead_letter_topic=common.dead_letter_topic,
        topics=tuple(topics_from_settings(durable)),
        services=services,
        state_dir=state_dir,
        servers=(kafka, redis),
        env=env,
        ready_timeout_s=max(stack.ready_timeout_s, CLUSTER_READY_TIMEOUT_S),
    )


class _ServiceProcess:
    """A service process in its own process group, with a pid file for `stop_stack`."""

    def __init__(
        self, spec: ServiceSpec, logs_dir: Path, run_dir: Path, env: Mapping[str, str]
    ) -> None:
        self.spec = spec
        self.log_path = logs_dir / f"{spec.name}.log"
        self.pid_path = run_dir / f"{spec.name}.pid"
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - our own commands, as a list
                list(spec.command),
                env={**os.environ, **env} if env else None,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which orders the stop
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - prctl only; see tether.py
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
    """SIGINT, SIGTERM and SIGHUP set `stop` (main thread only; elsewhere the caller sets it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
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
        # A closed terminal (EIO) or reader (EPIPE) must not stop the stack's cleanup.
        with suppress(OSError, ValueError):
            self.out.write(text + "\n")
            self.out.flush()


def run_stack(
    stack: StackSettings | None = None,
    *,
    seed_loader: SeedLoader | None = None,
    commands: Mapping[str, Sequence[str]] | None = None,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    cluster: bool = False,
) -> int:
    """Run the stack until SIGINT/SIGTERM (or `stop` is set); return an exit code.

    0 after a requested stop, 1 when the stack could not start or a service died. Whatever
    was started is stopped before returning, services first. `cluster`: on three Kafka
    nodes and a Redis Cluster (see the module doc).
    """
    stack = stack or StackSettings()
    say = _LinePrinter(out or sys.stdout)
    stop = stop or threading.Event()
    try:
        plan = plan_stack(stack, commands, cluster=cluster)
    except (StackError, ValueError) as exc:
        say(f"chancery up: {exc}")
        return 1
    taken = {name: port for name, port in plan.ports.items() if not port_is_free(port)}
    if taken:
        say(f"chancery up: ports in use: {', '.join(f'{n} {p}' for n, p in taken.items())}.")
        for line in explain_taken_ports(taken, plan.state_dir):
            say(line)
        return 1

    logs_dir = plan.state_dir / "logs"
    run_dir = plan.state_dir / "run"
    logs_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    watchdog = Watchdog(plan.state_dir, logs_dir / "watchdog.log")
    servers: list[Server] = []
    children: list[_ServiceProcess] = []
    code = 0
    with _stop_on_signals(stop):
        try:
            started = time.monotonic()
            say(_starting(plan))
            for server in plan.servers:
                servers.append(server)
                server.start()
            for server in plan.servers:
                server.wait_ready(plan.ready_timeout_s, cancel=stop)
            ensure_topics_blocking(plan.kafka_bootstrap, plan.topics, timeout_s=60.0)
            say(f"Kafka and Redis ready, topics {plan.topic} and {plan.dead_letter_topic} exist")
            for spec in plan.services:
                if stop.is_set():
                    raise StopRequested(spec.name)
                children.append(_ServiceProcess(spec, logs_dir, run_dir, plan.env))
            for child in children:
                _wait_healthy(child, plan.ready_timeout_s, stop)
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
            watchdog.release()
    return code


def _starting(plan: StackPlan) -> str:
    if not plan.cluster:
        return f"Starting Kafka on {plan.kafka_bootstrap} and Redis on {plan.redis_url}"
    _, redis = plan.servers
    assert isinstance(redis, RedisCluster)
    return (
        f"Starting three Kafka nodes ({plan.kafka_bootstrap}) and a Redis Cluster of three "
        f"masters and three replicas (ports {redis.ports[0]}-{redis.ports[-1]})"
    )


def _print_ready(say: _LinePrinter, plan: StackPlan, logs_dir: Path, elapsed: float) -> None:
    say("")
    say(f"Chancery is up ({elapsed:.1f}s):")
    for spec in plan.services:
        say(f"  {spec.name:<10} {spec.docs_url or spec.health_url}")
    say(f"  {'kafka':<10} {plan.kafka_bootstrap}  topic {plan.topic}")
    say(f"  {'redis':<10} {plan.redis_url}{'  (a Redis Cluster)' if plan.cluster else ''}")
    say(f"  {'logs':<10} {logs_dir}/")
    if plan.env:
        say("For the chancery command to use this stack, in another shell:")
        say("  export " + " ".join(f"{name}={value}" for name, value in plan.env.items()))
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
    servers: Sequence[Server],
    say: _LinePrinter,
) -> None:
    # Further signals must not interrupt the cleanup; every step below is bounded.
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
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


def stop_stack(
    state_dir: Path = Path(".chancery"),
    out: TextIO | None = None,
    *,
    timeout_s: float = CHILD_STOP_TIMEOUT_S,
) -> None:
    """Stop what a `chancery up` that could not clean up left (by pid files, never by name).

    Everything at once: the services (SIGTERM to each group, SIGKILL to what is left after
    timeout_s), and meanwhile Redis and Kafka, each by its script with the same timeout.
    """
    say = _LinePrinter(out or sys.stdout)
    run_dir = state_dir / "run"
    services: dict[str, int] = {}
    for pid_file in sorted(run_dir.glob("*.pid")) if run_dir.is_dir() else []:
        try:
            pid_text, started = pid_file.read_text().split()
            pid = int(pid_text)
        except ValueError:
            pid_file.unlink(missing_ok=True)
            continue
        if _alive(pid) and _start_time(pid) == started:
            say(f"stopping {pid_file.stem} (pid {pid})")
            _signal_group(pid, signal.SIGTERM)
            services[pid_file.stem] = pid
        else:
            pid_file.unlink(missing_ok=True)
    servers: list[KafkaServer | RedisServer | KafkaCluster | RedisCluster] = [
        RedisServer(data_dir=state_dir / "redis"),
        KafkaServer(data_dir=state_dir / "kafka"),
    ]
    # The clusters of start_cluster_servers, when a run used them.
    if (state_dir / REDIS_CLUSTER_DIR).is_dir():
        servers.append(RedisCluster(data_dir=state_dir / REDIS_CLUSTER_DIR))
    if (state_dir / KAFKA_CLUSTER_DIR).is_dir():
        servers.append(KafkaCluster(data_dir=state_dir / KAFKA_CLUSTER_DIR))

    def stop_server(server: KafkaServer | RedisServer | KafkaCluster | RedisCluster) -> None:
        try:
            server.stop(timeout_s=timeout_s)
        except ServerError as exc:
            say(f"stopping {server}: {exc}")

    stopping = [threading.Thread(target=stop_server, args=(server,)) for server in servers]
    for thread in stopping:
        thread.start()
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in services.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for name, pid in services.items():
        _signal_group(pid, signal.SIGKILL)  # what ignored SIGTERM, and what it started
        while _alive(pid):
            time.sleep(0.02)
        (run_dir / f"{name}.pid").unlink(missing_ok=True)
    for thread in stopping:
        thread.join()
    say("Stopped.")


def explain_taken_ports(taken: Mapping[str, int], state_dir: Path) -> list[str]:
    """What holds the ports `chancery up` needs, as far as can be told, and what to do."""
    if _left_by_a_previous_run(state_dir):
        return [
            f"A previous `chancery up` left processes running (pid files in {state_dir}):",
            "`make stop` stops them.",
        ]
    lines = []
    for name, port in taken.items():
        variable = PORT_VARIABLES.get(name, "its setting")
        if name == "redis" and _answers_as_redis(port):
            lines += [
                f"A Redis server that this checkout did not start answers on port {port}"
                + (
                    ": the system's own (systemd unit redis-server, which installing Debian's "
                    "redis-server package starts)."
                    if _system_redis_runs()
                    else " (installing Debian's redis-server package starts one as a service)."
                ),
                "Stop it (`sudo systemctl disable --now redis-server`), or give the stack "
                f"another port: `{variable}=redis://127.0.0.1:6380/0 make run` (the `chancery` "
                "commands need the same variable).",
            ]
        else:
            lines.append(
                f"Port {port} ({name}) is taken by another program (`ss -ltnp 'sport = :{port}'` "
                f"says which): stop it, or move {name} with {variable}."
            )
    return lines


def _left_by_a_previous_run(state_dir: Path) -> bool:
    """Whether a pid file of this state dir names a live process."""
    files = [*state_dir.glob("run/*.pid"), state_dir / "redis" / "redis.pid"]
    files.append(state_dir / "kafka" / "kafka.pid")
    for pid_file in files:
        with suppress(OSError, ValueError, IndexError):
            if _alive(int(pid_file.read_text().split()[0])):
                return True
    return False


def _answers_as_redis(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
    except OSError:
        return False
    return answer.startswith((b"+PONG", b"-NOAUTH", b"-DENIED"))


def _system_redis_runs() -> bool:
    try:
        done = subprocess.run(
            ["systemctl", "is-active", "--quiet", "redis-server"],  # noqa: S607 - a probe
            timeout=5,
            check=False,
            capture_output=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
