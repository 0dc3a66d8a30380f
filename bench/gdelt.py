"""The benchmarks' events: the real rows of one GDELT 2.0 export, mapped by the importer.

The export is the repository's zipped copy in tests/fixtures/reference, or
CHANCERY_GDELT_EXPORT (a .tsv, or a .zip holding one file). Each row goes through
`chancery import gdelt`'s own mapping (services/cli/importers/gdelt.py); its
`diplomacy.event.coded` event is kept, the rows the importer skips are left out.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from chancery.contract import EventCoded
from services.cli.importers.events import Mapped
from services.cli.importers.gdelt import map_row

ROOT = Path(__file__).resolve().parents[1]
EXPORT = Path(
    os.environ.get(
        "CHANCERY_GDELT_EXPORT",
        ROOT / "tests" / "fixtures" / "reference" / "gdelt2_export_20191024143000.tsv.zip",
    )
)


def coded_events(path: Path = EXPORT) -> list[EventCoded]:
    """One `diplomacy.event.coded` event per row the importer maps."""
    out = []
    for line in _export_text(path).splitlines():
        outcome = map_row(line.split("\t"))
        if isinstance(outcome, Mapped):
            out.append(outcome.coded)
    if not out:
        raise RuntimeError(f"no usable GDELT rows in {path}")
    return out


def coded_envelopes(path: Path = EXPORT) -> list[dict[str, Any]]:
    """The same events as a client sends them: CloudEvents structured JSON, as dicts."""
    return [e.model_dump(mode="json", exclude_none=True) for e in coded_events(path)]


def _export_text(path: Path) -> str:
    if path.suffix != ".zip":
        return path.read_text(encoding="utf-8")
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        return archive.read(name).decode("utf-8")
