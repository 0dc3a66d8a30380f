"""The stack `make run` starts (`.venv/bin/chancery up`), for the docs' examples to run
against: in a scratch working directory (its own `.chancery/`, the dev key the README reads,
and the checkout's `.venv`, `seeds` and `tests` linked in), on free ports that the session
is told through the variables the README and the commands read, CHANCERY_INGEST_URL and
CHANCERY_API_URL among them, so that it never meets a `make run` on the default ports.
Webhooks may reach loopback, as the README's Webhooks section has the reader start the
stack, and `HOOK` is where the README's receiver listens (a free port, not its 9000)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.cli.local import free_ports

from .shell import ShellSession, curl_with_status

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 240


@dataclass(frozen=True)
class DocsStack:
    cwd: Path
    env: dict[str, str]
    output: list[str]  # what `chancery up` printed, as it prints it

    def session(self) -> ShellSession:
        return ShellSession(self.cwd, self.env)


def _environment(shims: Path) -> dict[str, str]:
    kafka, controller, redis, ingest, api, projector, deliver, receiver = free_ports(8)
    venv_bin = str(ROOT / ".venv" / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANCERY_", "VIRTUAL_ENV"))}
    return {
        **env,
        # Not on PATH: the README's activation line must put `chancery` there.
        "PATH": os.pathsep.join([str(shims), *path]),
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "CHANCERY_KAFKA_CONTROLLER_PORT": str(controller),
        "CHANCERY_REDIS_URL": f"redis://127.0.0.1:{redis}/0",
        "CHANCERY_REDIS_PERSISTENCE": "none",
        "CHANCERY_INGEST_PORT": str(ingest),
        "CHANCERY_API_PORT": str(api),
        "CHANCERY_PROJECTOR_PORT": str(projector),
        "CHANCERY_DELIVER_PORT": str(deliver),
        "CHANCERY_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "CHANCERY_INGEST_URL": f"http://127.0.0.1:{ingest}",
        "CHANCERY_API_URL": f"http://127.0.0.1:{api}",
        "CHANCERY_LOG_JSON": "false",
        "HOOK": f"http://127.0.0.1:{receiver}/hook",
    }


@pytest.fixture(scope="session")
def docs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsStack]:
    cwd = tmp_path_factory.mktemp("docs-checkout")
    for name in (".venv", "seeds", "tests"):
        (cwd / name).symlink_to(ROOT / name)
    env = _environment(tmp_path_factory.mktemp("docs-shims") / "bin")
    curl_with_status(Path(env["PATH"].split(os.pathsep)[0]))
    up = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "chancery"), "up"],  # what `make run` runs
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert up.stdout is not None
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert up.stdout is not None
        for line in iter(up.stdout.readline, ""):
            output.append(line)
            if line.startswith("Press Ctrl-C"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.wait(0.2) and up.poll() is None and time.monotonic() < deadline:
        pass
    try:
        assert ready.is_set(), "".join(output)
        yield DocsStack(cwd, env, output)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(120)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        reader.join(10)
