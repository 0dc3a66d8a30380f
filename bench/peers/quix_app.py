"""The Quix Streams peer: each pair's event count and quad-class counts, in its state store.

Written as a Quix Streams user would write it: the topic's default deserializers (JSON values
through orjson, keys as bytes), a stateful `update`, whose state Quix keys by the record key
(the pair: ingest keys a coded event by its two actors), and the quad class looked up in the
CAMEO table chancery ships (chancery/contract/data/cameo_gdelt.tsv, read here with csv: this
environment cannot import chancery). Every setting is the library's default but those a
benchmark must fix: the broker, a fresh consumer group and state directory, the earliest
offset, the processing guarantee.

Run by bench/bench_peers.py with the Python of bench/peers/quix-env (not the project's):

    python quix_app.py --bootstrap B --topic T --count N --cameo TSV --state-dir D --out OUT

It writes OUT (JSON): when the first and the last of the N events were processed (seconds,
from one clock), the process's CPU seconds at both moments (/proc/self/stat: every thread,
librdkafka's included), the same once `run` returned (its last checkpoint committed: the
state in the store and its changelog, the offsets committed; then the app closed), and the
state store's contents after the run, {pair: [events, q1, q2, q3, q4]}, read back from the
store's partitions so the bench can check the work was done.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from quixstreams import Application, State
from quixstreams.state.rocksdb import RocksDBStorePartition

STATE_KEY = "counts"  # one value per pair: [events, quad 1, quad 2, quad 3, quad 4]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def quad_classes(tsv: Path) -> dict[str, int]:
    with tsv.open(encoding="utf-8", newline="") as f:
        return {row["code"]: int(row["quad_class"]) for row in csv.DictReader(f, delimiter="\t")}


class Meter:
    """When the first and the last of `count` events were processed, and the CPU then."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seen = 0
        self.first = self.last = self.cpu_first = self.cpu_last = 0.0

    def tick(self) -> None:
        self.seen += 1
        if self.seen == 1:
            self.first, self.cpu_first = time.perf_counter(), cpu_seconds()
        elif self.seen == self.count:
            self.last, self.cpu_last = time.perf_counter(), cpu_seconds()


def build(args: argparse.Namespace, meter: Meter) -> Application:
    quads = quad_classes(args.cameo)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        processing_guarantee=args.guarantee,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic)  # the defaults: JSON values (orjson), keys as bytes

    def count(event: dict[str, Any], state: State) -> None:
        counts = state.get(STATE_KEY) or [0, 0, 0, 0, 0]
        counts[0] += 1
        counts[quads[event["data"]["cameo"]]] += 1
        state.set(STATE_KEY, counts)
        meter.tick()

    app.dataframe(topic).update(count, stateful=True)
    return app


def read_state(state_dir: Path) -> dict[str, list[int]]:
    """Every pair's counts, from the store partitions the run left (the app is stopped)."""
    suffix = b"|" + json.dumps(STATE_KEY).encode()
    out: dict[str, list[int]] = {}
    for path in sorted(p for p in state_dir.rglob("*") if (p / "CURRENT").is_file()):
        partition = RocksDBStorePartition(str(path))
        try:
            for key, value in partition.iter_items(lower_bound=b""):
                if key.endswith(suffix):
                    pair = key[: -len(suffix)].decode()
                    if pair in out:
                        raise RuntimeError(f"pair {pair} in two partitions of the store")
                    out[pair] = json.loads(value)
        finally:
            partition.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--cameo", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--group", default=f"quix-peer-{uuid.uuid4().hex[:8]}")
    parser.add_argument(
        "--guarantee", choices=["at-least-once", "exactly-once"], default="at-least-once"
    )
    args = parser.parse_args()
    meter = Meter(args.count)
    app = build(args, meter)
    app.run(count=args.count, collect=False)
    # run() returns once its last checkpoint is committed and the app closed.
    committed, cpu_committed = time.perf_counter(), cpu_seconds()
    if meter.seen < args.count:
        raise SystemExit(f"stopped after {meter.seen} of {args.count} events")
    result = {
        "events": meter.seen,
        "first": meter.first,
        "last": meter.last,
        "cpu_first": meter.cpu_first,
        "cpu_last": meter.cpu_last,
        "committed": committed,
        "cpu_committed": cpu_committed,
        "state": read_state(args.state_dir),
    }
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
