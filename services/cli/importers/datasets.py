"""The two datasets behind one shape: check a file's layout, then map its rows in a stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from . import gdelt, icews
from .events import Outcome
from .reading import FileProblem, LayoutError, Line, TabFile

DatasetName = Literal["gdelt", "icews"]


class Dataset(Protocol):
    @property
    def name(self) -> DatasetName: ...

    @property
    def source(self) -> str: ...

    def check(self, path: Path) -> None:
        """Raise LayoutError (or FileProblem) unless the file has the dataset's layout."""

    def rows(self, lines: Iterator[Line], file_name: str) -> Iterator[tuple[Line, Outcome]]:
        """Each data row and what it becomes (a header line is consumed, not yielded)."""


@dataclass(frozen=True)
class Gdelt:
    name: DatasetName = "gdelt"
    source: str = gdelt.SOURCE

    def check(self, path: Path) -> None:
        with TabFile(path) as file:
            first = next(file.lines(), None)
        if first is None:
            raise FileProblem(f"{path}: the file is empty")
        gdelt.check_layout(first.fields, name=str(path))

    def rows(self, lines: Iterator[Line], file_name: str) -> Iterator[tuple[Line, Outcome]]:
        first = True
        for line in lines:
            if first:
                first = False
                if gdelt.check_layout(line.fields, name=file_name):
                    continue  # a header line someone added: not a row
            yield line, gdelt.map_row(line.fields)


@dataclass(frozen=True)
class Icews:
    name: DatasetName = "icews"
    source: str = icews.SOURCE

    def check(self, path: Path) -> None:
        with TabFile(path) as file:
            first = next(file.lines(), None)
        if first is None:
            raise FileProblem(f"{path}: the file is empty")
        icews.check_header(first.fields, name=str(path))

    def rows(self, lines: Iterator[Line], file_name: str) -> Iterator[tuple[Line, Outcome]]:
        header = next(lines, None)
        if header is None:
            return
        columns = icews.check_header(header.fields, name=file_name)
        for line in lines:
            yield line, icews.map_row(line.fields, columns)


__all__ = ["DATASETS", "Dataset", "DatasetName", "Gdelt", "Icews", "LayoutError"]

DATASETS: dict[DatasetName, Dataset] = {"gdelt": Gdelt(), "icews": Icews()}
