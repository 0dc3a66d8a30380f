"""`chancery up`'s supervisor, run for real: Kafka, Redis and three stand-in services that
answer /healthz; then SIGINT, after which none of its processes may remain."""

from __future__ import annotations

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

from services.cli.local import free_ports

pytestmark = pytest.mark.integration

# A stand-in service: answers 200 on /healthz, on the port its settings name.
STUB = """
import http.server, os, sys
port = int(os.environ[sys.argv[1]])
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
commands = {
    "ingest": [sys.executable, "-c", stub, "CHANCERY_INGEST_PORT"],
    "projector": [sys.executable, "-c", stub, "CHANCERY_PROJECTOR_PORT"],
    "api": [sys.executable, "-c", stub, "CHANCERY_API_PORT"],
    "deliver": [sys.executable, "-c", stub, "CHANCERY_DELIVER_PORT"],
}
def seed(url):
    Path(sys.argv[2]).write_text(json.dumps({"ingest": url}))
sys.exit(run_stack(commands=commands, seed_loader=seed))
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


def _start_up(env: dict[str, str], seeded: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the supervisor; return it and what it printed up to "Press Ctrl-C"."""
    up = subprocess.Popen(
        [sys.executable, "-c", RUNNER, STUB, str(seeded)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert up.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
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


def test_stop_cleans_up_after_a_killed_supervisor(tmp_path: Path) -> None:
    """`make stop`: a supervisor killed with SIGKILL leaves six processes; stop ends them."""
    env, _ = _stack_env(tmp_path)
    up, output = _start_up(env, tmp_path / "seeded.json")
    try:
        assert "Chancery is up" in output, output
        pids = _pids(tmp_path / "state")
    finally:
        up.kill()
        up.wait()
    assert all(_alive(pid) for pid in pids)

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
