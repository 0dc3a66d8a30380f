"""The real reference files (fixtures/README.md), and what each of their rows becomes."""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chancery.contract import Event
from services.cli.importers.datasets import Dataset
from services.cli.importers.events import Mapped, Outcome, Skipped
from services.cli.importers.reading import Line, TabFile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference"
GDELT2 = FIXTURES / "gdelt2_export_20191024143000.tsv.zip"
GDELT1 = FIXTURES / "gdelt1_events_sample_2013_2016_mixed57_58cols.tsv.zip"
ICEWS = FIXTURES / "icews_events_2018-06-01_02_sample.tab.zip"


@dataclass
class Mapping:
    """Every row of one file and what it became."""

    rows: list[tuple[Line, Outcome]] = field(default_factory=list)

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(o.reason if isinstance(o, Skipped) else "mapped" for _, o in self.rows)

    def events(self) -> Iterator[Event]:
        for _, outcome in self.rows:
            if isinstance(outcome, Mapped):
                yield from outcome.events

    def by_id(self, row_id: str) -> Outcome:
        for line, outcome in self.rows:
            if line.fields[0] == row_id:
                return outcome
        raise KeyError(row_id)


def map_file(dataset: Dataset, path: Path) -> Mapping:
    with TabFile(path) as file:
        return Mapping(list(dataset.rows(file.lines(), str(path))))


def extract(zipped: Path, folder: Path) -> Path:
    """The file inside a one-file fixture zip, written to `folder`."""
    with zipfile.ZipFile(zipped) as archive:
        (member,) = archive.namelist()
        target = folder / member
        target.write_bytes(archive.read(member))
    return target
