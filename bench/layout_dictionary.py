"""How the stored events' compression dictionary (chancery/data/stored-events-2.zdict) is
made: `python -m bench.layout_dictionary` writes it again, byte for byte.

Read-model layout 2 (chancery/keyspace.py) stores each event zstd-compressed with this
dictionary. A dictionary belongs to its layout: stored events are decompressed with the one
they were compressed with, so a new dictionary is a new layout (a `chancery rebuild`).

It is trained on events none of the benchmarks or imports store, so that what they measure
is what unseen events cost: the GDELT 1.0 rows of tests/fixtures/reference (2013-2016,
which `chancery import gdelt` refuses as they are), moved to the 2.0 columns and mapped by
the importer, stamped as ingest stamps them, and the article's seeds. The GDELT 2.0 export
and the ICEWS sample, which the benchmarks store, are left out.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import zstandard

from chancery.contract import encode_event, parse_incoming, partition_key, stamp
from chancery.contract.catalogue import Event
from chancery.keyspace import DICTIONARY_PATH
from services.cli.importers.events import Mapped
from services.cli.importers.gdelt import COLUMNS, map_row

from .gdelt import ROOT

GDELT1 = (
    ROOT
    / "tests"
    / "fixtures"
    / "reference"
    / ("gdelt1_events_sample_2013_2016_mixed57_58cols.tsv.zip")
)
SEEDS = ROOT / "seeds" / "article.jsonl"
SIZE = 8192
RECORDED = datetime(2016, 7, 28, 12, tzinfo=UTC)
_ADM2 = ("Actor1Geo_ADM2Code", "Actor2Geo_ADM2Code", "ActionGeo_ADM2Code")
_GDELT1_COLUMNS = tuple(c for c in COLUMNS if c not in _ADM2)


def _gdelt1_events() -> list[Event]:
    with zipfile.ZipFile(GDELT1) as archive:
        (name,) = archive.namelist()
        lines = archive.read(name).decode("utf-8").splitlines()
    events: list[Event] = []
    for line in lines:
        fields = line.split("\t")
        if len(fields) != len(_GDELT1_COLUMNS):
            continue  # the 57-column rows have no SOURCEURL
        row = dict(zip(_GDELT1_COLUMNS, fields, strict=True))
        row["DATEADDED"] += "000000"
        outcome = map_row([row.get(c, "") for c in COLUMNS])
        if isinstance(outcome, Mapped):
            events.extend(outcome.events)
    return events


def _seed_events() -> list[Event]:
    return [parse_incoming(json.loads(line)) for line in SEEDS.read_text().splitlines() if line]


def samples() -> list[bytes | bytearray | memoryview]:
    """The training events, as the log holds them."""
    out: list[bytes | bytearray | memoryview] = []
    for i, event in enumerate([*_gdelt1_events(), *_seed_events()]):
        at = RECORDED.replace(microsecond=i % 1_000_000)
        out.append(
            encode_event(stamp(event, recorded_at=at, partition_key=partition_key(event) or "k"))
        )
    return out


def build() -> bytes:
    # zstd's parameter search, on one thread: the same samples give the same dictionary.
    return zstandard.train_dictionary(SIZE, samples(), threads=0).as_bytes()


def main() -> None:
    data = build()
    Path(DICTIONARY_PATH).write_bytes(data)
    print(f"wrote {len(data)} bytes to {DICTIONARY_PATH}")


if __name__ == "__main__":
    main()
