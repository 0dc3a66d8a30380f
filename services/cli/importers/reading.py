"""Reading import files as a stream of tab-separated lines, one at a time.

Memory stays constant whatever the file's size: nothing but the current line is held. A
`.zip` holding one file (as GDELT and the ICEWS Dataverse distribute them) is read from
inside the archive, uncompressed on the fly.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class FileProblem(ValueError):
    """A file cannot be read as an import file; the message names it."""


class LayoutError(FileProblem):
    """A file is not of the dataset's layout; the message names the file and what it is."""


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line number in the file
    fields: list[str]
    size: int  # bytes, to move a progress bar


class TabFile:
    """A tab-separated file (or the one file inside a .zip), opened for one pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        self._stack = ExitStack()
        self._stream: IO[bytes] | None = None
        self.size = 0

    def __enter__(self) -> TabFile:
        try:
            if self.path.suffix.lower() == ".zip":
                archive = self._stack.enter_context(zipfile.ZipFile(self.path))
                members = [info for info in archive.infolist() if not info.is_dir()]
                if len(members) != 1:
                    raise FileProblem(
                        f"{self.path}: a .zip must hold exactly one file; it holds {len(members)}"
                    )
                self.size = members[0].file_size
                self.name = f"{self.path.name}:{members[0].filename}"
                self._stream = self._stack.enter_context(archive.open(members[0]))
            else:
                self.size = self.path.stat().st_size
                self._stream = self._stack.enter_context(self.path.open("rb"))
        except FileProblem:
            self._stack.close()
            raise
        except (OSError, zipfile.BadZipFile) as exc:
            self._stack.close()
            raise FileProblem(f"{self.path}: cannot read it: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def lines(self) -> Iterator[Line]:
        """Every non-blank line, split on tabs (no quoting: neither dataset quotes)."""
        if self._stream is None:
            raise RuntimeError("open the file first (with TabFile(path) as f)")
        try:
            for number, raw in enumerate(self._stream, 1):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if text.strip():
                    yield Line(number, text.split("\t"), len(raw))
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise FileProblem(f"{self.path}: read failed: {exc}") from None

    def first_line(self) -> Line | None:
        """The first non-blank line, read through a separate handle (the stream is kept)."""
        with TabFile(self.path) as again:
            return next(again.lines(), None)
