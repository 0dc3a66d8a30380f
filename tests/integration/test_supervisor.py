"""`chancery up`'s supervisor, run for real: Kafka, Redis and three stand-in services that
answer /healthz; then SIGINT, or SIGKILL, after which none of its processes may remain."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from services.cli.local import KafkaCluster, RedisCluster, free_ports, port_is_free
from services.cli.local.supervisor import StackSettings, explain_taken_ports, run_stack
from services.cli.local.tether import PID_FILE as WATCHDOG_PID_FILE

pytestmark = pytest.mark.integration

# A stand-in service: answers 200 on /healthz, on the port its settings name; with a second
# argument, writes there the addresses it was given.
STUB = """
import http.server, json, os, sys
port = int(os.environ[sys.argv[1]])
if len(sys.argv) > 2:
    names = ("CHANCERY_KAFKA_BOOTSTRAP_SERVERS", "CHANCERY_REDIS_URL", "CHANCERY_REDIS_CLUSTER")
    open(sys.argv[2], "w").write(json.dumps({n: os.environ.get(n) for n in names}))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

# Runs run_stack in the main thread, as `chancery up` does, with the stand-ins.
RUNNER = """
import json, sys
from pathlib import Path
from services.cli.local.supervisor import run_stack
stub = sys.argv[1]
told = sys.argv[3:4]  # where the ingest stand-in writes what it was given
commands = {
    "ingest": [sys.executable, "-c", stub, "CHANCERY_INGEST_PORT", *told],
    "projector": [sys.executable, "-c", stub, "CHANCERY_PROJECTOR_PORT"],
    "api": [sys.executable, "-c", stub, "CHANCERY_API_PORT"],
    "deliver": [sys.executable, "-c", stub, "CHANCERY_DELIVER_PORT"],
}
def seed(url):
    Path(sys.argv[2]).write_text(json.dumps({"ingest": url}))
sys.exit(run_stack(commands=commands, seed_loader=seed, cluster=bool(told)))
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stack_env(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    kafka, controller, redis_port, ingest, api, projector, deliver = free_ports(7)
    env = {
        **os.environ,
        "CHANCERY_STATE_DIR": str(tmp_path / "state"),
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "CHANCERY_KAFKA_CONTROLLER_PORT": str(controller),
        "CHANCERY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CHANCERY_INGEST_PORT": str(ingest),
        "CHANCERY_API_PORT": str(api),
        "CHANCERY_PROJECTOR_PORT": str(projector),
        "CHANCERY_DELIVER_PORT": str(deliver),
    }
    ports = {
        "kafka": kafka,
        "kafka controller": controller,
        "redis": redis_port,
        "ingest": ingest,
        "api": api,
        "projector": projector,
        "deliver": deliver,
    }
    return env, ports


def _pids(state: Path) -> list[int]:
    pids = [int(p.read_text().split()[0]) for p in (state / "run").glob("*.pid")]
    pids += [int((state / "kafka" / "kafka.pid").read_text())]
    pids += [int((state / "redis" / "redis.pid").read_text())]
    return pids


def _services(state: Path) -> list[int]:
    return [int(p.read_text().split()[0]) for p in (state / "run").glob("*.pid")]


def _watchdog(state: Path) -> int:
    return int((state / WATCHDOG_PID_FILE).read_text())


def _start_up(
    env: dict[str, str], seeded: Path, *, cluster_told: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start the supervisor (on the clusters, with `cluster_told`: where the ingest stand-in
    writes the addresses it was given); return it and what it printed up to "Press Ctrl-C"."""
    told = [str(cluster_told)] if cluster_told is not None else []
    up = subprocess.Popen(
        [sys.executable, "-c", RUNNER, STUB, str(seeded), *told],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert up.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    return up, "".join(lines)


def test_up_then_sigint_leaves_no_process(tmp_path: Path) -> None:
    env, ports = _stack_env(tmp_path)
    ingest, api, projector, redis_port = (
        ports["ingest"],
        ports["api"],
        ports["projector"],
        ports["redis"],
    )
    seeded = tmp_path / "seeded.json"
    up, output = _start_up(env, seeded)
    try:
        assert "Chancery is up" in output, output
        assert f"http://127.0.0.1:{ingest}/docs" in output
        assert f"http://127.0.0.1:{api}/docs" in output
        assert json.loads(seeded.read_text()) == {"ingest": f"http://127.0.0.1:{ingest}"}
        for port in (ingest, api, projector, ports["deliver"]):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        client = redis.Redis(port=redis_port)
        assert client.ping()
        client.close()

        state = tmp_path / "state"
        pids = _pids(state)
        assert len(pids) == 6  # four services, Kafka and Redis
        assert all(_alive(pid) for pid in pids)
        watchdog = _watchdog(state)
        assert _alive(watchdog)

        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=90)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 0, output + rest
    assert "Stopped." in rest
    assert [pid for pid in pids if _alive(pid)] == []
    assert list((state / "run").glob("*.pid")) == []
    assert not _alive(watchdog), "released by a supervisor that stopped everything itself"
    assert not (state / WATCHDOG_PID_FILE).exists()


def test_a_supervisor_killed_outright_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGKILL, as the OOM killer or `kill -9` would: within 10 s no process of the stack is
    left (services by PR_SET_PDEATHSIG, Kafka and Redis by the watchdog) and every port is
    free again."""
    env, ports = _stack_env(tmp_path)
    up, output = _start_up(env, tmp_path / "seeded.json")
    state = tmp_path / "state"
    try:
        assert "Chancery is up" in output, output
        pids = [*_pids(state), _watchdog(state)]
        assert all(_alive(pid) for pid in pids)
        assert not any(port_is_free(port) for port in ports.values())
    finally:
        up.kill()
        up.wait()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [pid for pid in pids if _alive(pid)]
        taken = {name: port for name, port in ports.items() if not port_is_free(port)}
        if not left and not taken:
            break
        time.sleep(0.1)
    assert left == [], (state / "logs" / "watchdog.log").read_text()
    assert taken == {}
    assert list((state / "run").glob("*.pid")) == []


def test_stop_cleans_up_after_a_killed_supervisor_and_watchdog(tmp_path: Path) -> None:
    """`make stop`: with the watchdog killed too (a machine-wide kill), the services still
    end with the supervisor, Kafka and Redis are left, and stop ends them."""
    env, _ = _stack_env(tmp_path)
    up, output = _start_up(env, tmp_path / "seeded.json")
    state = tmp_path / "state"
    try:
        assert "Chancery is up" in output, output
        services = _services(state)
        pids = _pids(state)
        os.kill(_watchdog(state), signal.SIGKILL)
    finally:
        up.kill()
        up.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in services) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in services if _alive(pid)] == []
    servers = [pid for pid in pids if pid not in services]
    assert len(servers) == 2
    assert all(_alive(pid) for pid in servers)

    stop = subprocess.run(
        [sys.executable, "-m", "services.cli.local", "stop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert [pid for pid in pids if _alive(pid)] == []


def test_a_redis_it_did_not_start_is_named_and_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installing Debian's redis-server starts the system's own on 6379: `chancery up` says
    so and how to get past it, instead of suggesting `make stop`, which cannot help."""
    env, ports = _stack_env(tmp_path)
    for name, value in env.items():
        if name.startswith("CHANCERY_"):
            monkeypatch.setenv(name, value)
    foreign = subprocess.Popen(
        ["redis-server", "--port", str(ports["redis"]), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while port_is_free(ports["redis"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        out = io.StringIO()
        code = run_stack(StackSettings(), out=out)
    finally:
        foreign.terminate()
        foreign.wait()
    text = out.getvalue()
    assert code == 1
    assert f"ports in use: redis {ports['redis']}." in text
    redis_port = ports["redis"]
    assert f"A Redis server that this checkout did not start answers on port {redis_port}" in text
    assert "CHANCERY_REDIS_URL=redis://127.0.0.1:6380/0 make run" in text
    assert "make stop" not in text
    assert not (tmp_path / "state" / "kafka").exists(), "nothing was started"


def test_a_port_held_by_a_previous_run_points_to_make_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "run").mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (state / "run" / "api.pid").write_text(f"{sleeper.pid} 1\n")
        lines = explain_taken_ports({"api": 8002}, state)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert any("`make stop` stops them" in line for line in lines)
    assert explain_taken_ports({"api": 8002}, state) == [
        "Port 8002 (api) is taken by another program (`ss -ltnp 'sport = :8002'` says which): "
        "stop it, or move api with CHANCERY_API_PORT."
    ]


def test_up_on_the_clusters_then_sigint_leaves_no_process(tmp_path: Path) -> None:
    """`chancery up --cluster` on free ports: three Kafka nodes and a Redis Cluster; the
    services are told where they are; SIGINT stops the services, then Redis, then Kafka."""
    env, _ = _stack_env(tmp_path)
    kafka = free_ports(6)
    redis_ports = free_ports(12)
    env |= {
        "CHANCERY_KAFKA_CLUSTER_PORTS": json.dumps(kafka[:3]),
        "CHANCERY_KAFKA_CLUSTER_CONTROLLER_PORTS": json.dumps(kafka[3:]),
        "CHANCERY_REDIS_CLUSTER_PORTS": json.dumps(redis_ports[:6]),
        "CHANCERY_REDIS_CLUSTER_BUS_PORTS": json.dumps(redis_ports[6:]),
        "CHANCERY_REDIS_PERSISTENCE": "none",
    }
    told_path = tmp_path / "told.json"
    up, output = _start_up(env, tmp_path / "seeded.json", cluster_told=told_path)
    state = tmp_path / "state"
    kafka_cluster = KafkaCluster(data_dir=state / "kafka-cluster", ports=kafka[:3])
    redis_cluster = RedisCluster(data_dir=state / "redis-cluster", ports=redis_ports[:6])
    try:
        assert "Chancery is up" in output, output
        bootstrap = ",".join(f"127.0.0.1:{p}" for p in kafka[:3])
        assert json.loads(told_path.read_text()) == {
            "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CHANCERY_REDIS_URL": f"redis://127.0.0.1:{redis_ports[0]}/0",
            "CHANCERY_REDIS_CLUSTER": "true",
        }
        assert f"export CHANCERY_KAFKA_BOOTSTRAP_SERVERS={bootstrap}" in output
        client = redis.Redis(port=redis_ports[0])
        assert client.info("cluster")["cluster_enabled"] == 1
        client.close()
        pids = [int(p.read_text().split()[0]) for p in (state / "run").glob("*.pid")]
        pids += [pid for pid in kafka_cluster.pids().values() if pid is not None]
        pids += [pid for pid in redis_cluster.pids().values() if pid is not None]
        assert len(pids) == 4 + 3 + 6  # four services, three Kafka nodes, six Redis nodes
        assert all(_alive(pid) for pid in pids)

        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        kafka_cluster.stop()
        redis_cluster.stop()
    assert up.returncode == 0, output + rest
    assert "Stopping: deliver, api, projector, ingest, redis, kafka" in rest
    assert [pid for pid in pids if _alive(pid)] == []
