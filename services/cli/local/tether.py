"""What ties the local stack's processes to `chancery up`, so that none outlives it.

Two mechanisms, because the stack has two kinds of processes:
- The services (ingest, projector, API) are the supervisor's own children: each asks the
  kernel, before it runs, for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`).
- Kafka and Redis are daemons their infra/ scripts start (the scripts exit at once, so their
  parent is gone from the start): a watchdog process stops them. The supervisor starts it
  first, in a session of its own, reading a pipe whose write end only the supervisor
  holds. However the supervisor ends (SIGKILL, out of memory, a closed terminal), the
  kernel closes that end and the watchdog reads end-of-file; a supervisor that stopped
  everything itself says `done` first. Otherwise the watchdog stops what the pid files in
  the state dir name, all at once, SIGTERM then SIGKILL after `GRACE_S`.

PR_SET_PDEATHSIG fires when the parent *thread* ends, so the supervisor starts its
services from the thread that lives as long as it does (`run_stack`'s).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
GRACE_S = 4.0
"""How long the watchdog lets a process stop on SIGTERM before SIGKILL."""
DONE = b"done\n"
PID_FILE = "watchdog.pid"
"""In the state dir (not run/, whose pid files the watchdog itself stops)."""


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get SIGTERM when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()
    sigterm = int(signal.SIGTERM)

    def tether() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), sigterm)

    return tether


class Watchdog:
    """The supervisor's side of the watchdog: start it, and tell it when all is stopped."""

    def __init__(self, state_dir: Path, log_path: Path) -> None:
        read_end, self._write_end = os.pipe()  # neither is inherited by other children
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - our own module, as a list
                [sys.executable, "-m", "services.cli.local.tether", str(state_dir)],
                stdin=read_end,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # neither Ctrl-C nor a closed terminal reaches it
            )
        os.close(read_end)

    def release(self) -> None:
        """Everything is stopped: let the watchdog go without doing anything."""
        try:
            os.write(self._write_end, DONE)
        finally:
            os.close(self._write_end)
        self.process.wait()


def watch(state_dir: Path) -> int:
    """The watchdog itself: wait for the supervisor's end; clean up unless it said `done`."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    pid_file = state_dir / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        said = sys.stdin.buffer.read()  # until the supervisor's end of the pipe closes
        if said == DONE:
            return 0
        from .supervisor import stop_stack

        print("chancery up ended without stopping the stack: stopping it", flush=True)  # noqa: T201
        stop_stack(state_dir, timeout_s=GRACE_S)
        return 0
    finally:
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(watch(Path(sys.argv[1])))
