"""The README's webhook receiver (its `python` block that starts `# receiver.py`), run as the
reader runs it: saved as receiver.py, started with the subscription's secret, on the port
that the session's `$HOOK` names. What it prints is collected, line by line."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .shell import code_blocks

RECEIVER_HEADER = "# receiver.py"


def receiver_source(page: Path) -> str:
    (block,) = [
        b for b in code_blocks(page, frozenset({"python"})) if b.text.startswith(RECEIVER_HEADER)
    ]
    return block.text


class Receiver:
    def __init__(self, python: Path, script: Path, secret: str, port: int) -> None:
        self.port = port
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(python), "-u", str(script), secret, str(port)],
            cwd=script.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # http.server's request log, beside what it prints
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, ""):
            self.lines.append(line.rstrip("\n"))

    def wait_listening(self, timeout_s: float) -> None:
        """Until it accepts connections, as a reader's would before the first event: a first
        attempt refused would be a second attempt listed."""
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None and time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.1)
        raise AssertionError("the receiver is not listening:\n" + "\n".join(self.lines))

    def wait_for(self, wanted: Callable[[str], bool], timeout_s: float) -> str:
        """The first line printed that is `wanted`, once it is printed (bounded wait)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if wanted(line):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"the receiver printed no such line (exit {self.process.poll()}):\n"
            + "\n".join(self.lines)
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
