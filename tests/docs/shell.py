"""Running the shell blocks of a Markdown page as a reader would: in order, in one bash.

The blocks come from markdown-it-py's parse of the page (fenced code whose info string is
`sh`, `bash` or `shell`), each with the heading it sits under. `ShellSession` feeds them,
exactly as written, to one bash process, so a variable one block sets is there for the
next, and returns what each printed and its exit status. A block that runs until Ctrl-C
(`curl -N`, `chancery tail`) is interrupted as a reader would: SIGINT to what the block
runs, once its output says enough.

`curl` on the session's PATH is the real curl plus `--write-out` of the HTTP status to
stderr, so a test can check every answer's status without changing the command.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from markdown_it import MarkdownIt

SHELLS = frozenset({"sh", "bash", "shell"})
STATUS_PREFIX = "docs-test: HTTP "
FAILED_PREFIX = "docs-test: failed: "


@dataclass(frozen=True)
class Block:
    text: str
    section: str
    line: int  # 1-based line of the fence in the page

    def where(self, page: Path) -> str:
        return f"{page.name}:{self.line} ({self.section})"


def code_blocks(page: Path, languages: frozenset[str]) -> list[Block]:
    """Every fenced block of the page in one of these languages, in order, with the heading
    above it."""
    tokens = MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8"))
    blocks: list[Block] = []
    section = ""
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            section = tokens[index + 1].content
        elif token.type == "fence" and (token.info.split() or [""])[0] in languages:
            line = token.map[0] + 1 if token.map else 0
            blocks.append(Block(token.content, section, line))
    return blocks


def shell_blocks(page: Path) -> list[Block]:
    """Every shell block of the page, in order, with the heading above it."""
    return code_blocks(page, SHELLS)


@dataclass
class Ran:
    """What a block printed, its exit status, and the HTTP status of each curl in it."""

    stdout: str
    stderr: str
    code: int
    statuses: list[int] = field(default_factory=list)
    interrupted: bool = False
    failed: list[str] = field(default_factory=list)  # each command that failed, its status


def curl_with_status(folder: Path) -> Path:
    """A `curl` that is the real one, printing each answer's status to stderr as well."""
    real = shutil.which("curl")
    assert real, "curl is not installed"
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "curl"
    shim.write_text(
        f"#!/bin/sh\nexec {real} --write-out '%{{stderr}}{STATUS_PREFIX}%{{http_code}}\\n' \"$@\"\n"
    )
    shim.chmod(0o755)
    return folder


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Companion(Protocol):
    """A process a reader runs beside the terminal (a webhook receiver): stopped with it."""

    def stop(self) -> None: ...


class ShellSession:
    """One bash, fed block after block; what it prints is read by two threads."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.companions: dict[str, Companion] = {}
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            # A terminal's shell runs commands with SIGINT at its default, so Ctrl-C stops
            # them; a test run in the background inherits it ignored (and bash cannot undo
            # that), so the session starts from the default.
            preexec_fn=_default_sigint,  # noqa: PLW1509 - one signal call, nothing else
        )
        self._out: queue.Queue[str] = queue.Queue()
        self._err: queue.Queue[str] = queue.Queue()
        for stream, into in ((self.process.stdout, self._out), (self.process.stderr, self._err)):
            threading.Thread(target=self._pump, args=(stream, into), daemon=True).start()
        # Every command of a block counts, not only its last: each failure is reported.
        assert self.process.stdin is not None
        self.process.stdin.write(
            f'trap \'printf "\\n{FAILED_PREFIX}%s %s\\n" "$BASH_COMMAND" $? >&2\' ERR\n'
        )

    @staticmethod
    def _pump(stream: object, into: queue.Queue[str]) -> None:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            into.put(line)

    def run(
        self,
        text: str,
        *,
        timeout_s: float = 120,
        interrupt_when: Callable[[str], bool] | None = None,
    ) -> Ran:
        """Run `text` as bash reads a script; with `interrupt_when`, SIGINT the command it
        runs once the output so far satisfies it (or after timeout_s, as a failure)."""
        assert self.process.stdin is not None
        marker = f"__block_{uuid.uuid4().hex}__"
        # The markers start a line of their own even after output without a final newline
        # (curl's); the newline they add is taken off again below.
        self.process.stdin.write(
            f"{text}\n__status=$?; printf '\\n%s %s\\n' {marker} \"$__status\"; "
            f"printf '\\n%s\\n' {marker} >&2\n"
        )
        self.process.stdin.flush()
        out: list[str] = []
        err: list[str] = []
        code: int | None = None
        err_done = False
        interrupted = False
        deadline = time.monotonic() + timeout_s
        while code is None or not err_done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no end after {timeout_s}s; printed:\n{''.join(out)}")
            try:
                line = self._out.get(timeout=0.05)
                if line.startswith(marker):
                    code = int(line.split()[1])
                    out[-1] = out[-1].removesuffix("\n")
                else:
                    out.append(line)
            except queue.Empty:
                pass
            while True:
                try:
                    line = self._err.get_nowait()
                except queue.Empty:
                    break
                if line.strip() == marker:
                    err_done = True
                    err[-1] = err[-1].removesuffix("\n")
                else:
                    err.append(line)
            if interrupt_when and not interrupted and code is None and interrupt_when("".join(out)):
                interrupted = self._interrupt()
        statuses = [
            int(line.removeprefix(STATUS_PREFIX)) for line in err if line.startswith(STATUS_PREFIX)
        ]
        failed = [
            line.removeprefix(FAILED_PREFIX).strip()
            for line in err
            if line.startswith(FAILED_PREFIX)
        ]
        rest = "".join(line for line in err if not line.startswith((STATUS_PREFIX, FAILED_PREFIX)))
        return Ran("".join(out), rest, code, statuses, interrupted, failed)

    def _interrupt(self) -> bool:
        """Ctrl-C: SIGINT to every process bash runs (bash itself carries on)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(pid) for pid in children.read_text().split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        return bool(pids)

    def close(self) -> None:
        for companion in self.companions.values():
            companion.stop()
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
