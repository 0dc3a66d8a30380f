"""The base of the local servers: a typed front to infra/<server>/<server>.sh.

The shell scripts own how a server is installed, started, awaited and stopped, so `make`,
people at a terminal and this package run the servers the same way.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Generic, Self, TypeVar

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """A server script failed; the message carries what it printed."""


class StopRequested(RuntimeError):
    """A wait was abandoned because a stop was requested."""


def infra_dir() -> Path:
    """The project's infra/ folder (CHANCERY_INFRA_DIR overrides it)."""
    override = os.environ.get("CHANCERY_INFRA_DIR")
    path = Path(override) if override else Path(__file__).resolve().parents[3] / "infra"
    if not path.is_dir():
        msg = f"no infra/ folder at {path}: run from a checkout or set CHANCERY_INFRA_DIR"
        raise ServerError(msg)
    return path


def run_script(
    script: Path,
    *args: str,
    timeout_s: float | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Run `script args...`, return its stdout; raise ServerError with its stderr on failure.

    The script runs in its own session, so a Ctrl-C at the terminal reaches only the
    caller, which decides what to stop. `cancel` abandons the script (only use it for
    commands that change nothing, such as `wait`).
    """
    command = [str(script), *args]
    log.debug("running %s", " ".join(command))
    with subprocess.Popen(  # noqa: S603 - our own script, arguments as a list
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                cancelled = cancel is not None and cancel.is_set()
                expired = deadline is not None and time.monotonic() > deadline
                if cancelled or expired:
                    process.kill()
                    process.communicate()
                    if cancelled:
                        raise StopRequested(" ".join(command)) from None
                    msg = f"{' '.join(command)} took more than {timeout_s}s"
                    raise ServerError(msg) from None
    for line in stderr.splitlines():
        log.info("%s", line)
    if process.returncode != 0:
        msg = f"{' '.join(command)} failed (exit {process.returncode}):\n{stderr.strip()}"
        raise ServerError(msg)
    return stdout


class _Started(ABC):
    """`with server:` starts it, waits until it serves (stopping it if it never does), and
    stops it at the end."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def wait_ready(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ScriptServer(_Started):
    """A server started in its own session by a script, known by the pid file in data_dir.

    start() returns once the process runs; wait_ready() until it serves clients. As a
    context manager it starts, waits and, on exit, stops. stop() then start() on the same
    data_dir restarts it with its data (what fault tests need); kill() is a SIGKILL.
    """

    script_name: str

    def __init__(self, *, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir.resolve()

    @property
    def script(self) -> Path:
        return infra_dir() / self.script_name / f"{self.script_name}.sh"

    @abstractmethod
    def _start_args(self) -> list[str]: ...

    def _run(
        self, *args: str, timeout_s: float | None = None, cancel: threading.Event | None = None
    ) -> str:
        return run_script(self.script, *args, timeout_s=timeout_s, cancel=cancel)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._run("start", "--data-dir", str(self.data_dir), *self._start_args())

    def wait_ready(self, timeout_s: float = 90.0, cancel: threading.Event | None = None) -> None:
        self._run(
            "wait",
            "--data-dir",
            str(self.data_dir),
            "--timeout",
            str(max(1, round(timeout_s))),
            timeout_s=timeout_s + 10,
            cancel=cancel,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after timeout_s; no-op when not running."""
        self._run("stop", "--data-dir", str(self.data_dir), "--timeout", str(round(timeout_s)))

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self._run("kill", "--data-dir", str(self.data_dir))

    def restart(self, timeout_s: float = 90.0) -> None:
        self.stop()
        self.start()
        self.wait_ready(timeout_s)

    @property
    def pid(self) -> int | None:
        """The server's pid when it runs, else None."""
        try:
            out = run_script(self.script, "status", "--data-dir", str(self.data_dir))
        except ServerError:
            return None
        return int(out.strip())

    def is_running(self) -> bool:
        return self.pid is not None


NodeT = TypeVar("NodeT", bound=ScriptServer)


class ScriptCluster(_Started, Generic[NodeT]):
    """Several servers of one script as one cluster: `<script>.sh cluster ...` on data_dir.

    Each node lives in data_dir/node-N (N from 1) and is a ScriptServer of its own, so a
    fault test kills one node, starts it again and waits for it, while the others run.
    start() starts every node that does not run; wait_ready() waits until the cluster as a
    whole serves (the scripts say what that means); stop() stops them all. As a context
    manager it starts, waits and, on exit, stops.
    """

    script_name: str

    def __init__(self, *, data_dir: Path, nodes: Sequence[NodeT]) -> None:
        self.data_dir = data_dir.resolve()
        self.nodes: tuple[NodeT, ...] = tuple(nodes)

    @property
    def script(self) -> Path:
        return infra_dir() / self.script_name / f"{self.script_name}.sh"

    @abstractmethod
    def _start_args(self) -> list[str]: ...

    def _cluster(
        self,
        command: str,
        *args: str,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> str:
        return run_script(
            self.script,
            "cluster",
            command,
            "--data-dir",
            str(self.data_dir),
            *args,
            timeout_s=timeout_s,
            cancel=cancel,
        )

    def node(self, number: int) -> NodeT:
        """Node `number`, counted from 1 as its directory (node-1, node-2, ...)."""
        if not 1 <= number <= len(self.nodes):
            msg = f"no node {number}: nodes are 1 to {len(self.nodes)}"
            raise ValueError(msg)
        return self.nodes[number - 1]

    def start(self) -> None:
        """Start every node that does not run (all of them, the first time)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._cluster("start", *self._start_args())

    def wait_ready(self, timeout_s: float = 120.0, cancel: threading.Event | None = None) -> None:
        self._cluster(
            "wait",
            "--timeout",
            str(max(1, round(timeout_s))),
            timeout_s=timeout_s + 10,
            cancel=cancel,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Every node: SIGTERM, then SIGKILL after timeout_s; no-op for nodes not running."""
        self._cluster("stop", "--timeout", str(round(timeout_s)))

    def kill(self) -> None:
        """SIGKILL to every node, as a power cut would."""
        self._cluster("kill")

    def kill_node(self, number: int) -> None:
        """SIGKILL to one node, as a crash would."""
        self.node(number).kill()

    def stop_node(self, number: int, timeout_s: float = 30.0) -> None:
        self.node(number).stop(timeout_s)

    def start_node(self, number: int, timeout_s: float = 120.0) -> None:
        """Start one node again (its ports and data as before) and wait until it serves."""
        node = self.node(number)
        node.start()
        node.wait_ready(timeout_s)

    def restart_node(self, number: int, timeout_s: float = 120.0) -> None:
        self.stop_node(number)
        self.start_node(number, timeout_s)

    def heal(self, timeout_s: float = 120.0) -> None:
        """Start whatever node is down and wait until the whole cluster serves again."""
        self.start()
        self.wait_ready(timeout_s)

    def pids(self) -> dict[int, int | None]:
        """Each node's pid (None when it does not run), by node number."""
        return {number: node.pid for number, node in enumerate(self.nodes, start=1)}

    def running(self) -> list[int]:
        """The numbers of the nodes that run."""
        return [number for number, pid in self.pids().items() if pid is not None]
