"""What every benchmark module shares: the servers, the result rows, the table."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from services.cli.local import (
    KafkaServer,
    RedisServer,
    chancery_topics,
    ensure_topics_blocking,
    free_ports,
)


@dataclass(frozen=True)
class Row:
    """One measure, ours beside its baseline. `higher_is_better` decides the ratio's sense:
    the ratio is always ours/baseline; the target says which way it must go."""

    benchmark: str
    measure: str
    unit: str
    baseline: float | None
    ours: float
    target: str
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.ours / self.baseline


@dataclass
class BenchEnv:
    """Servers shared by every benchmark of a run (fresh topics per benchmark)."""

    kafka_bootstrap: str
    redis_url: str
    kafka: KafkaServer | None = None
    redis: RedisServer | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chancery-bench-")))
    _topics: int = 0

    def new_topic(self, name: str, partitions: int = 6) -> str:
        """A fresh event topic (and its .dlq) for one benchmark."""
        self._topics += 1
        topic = f"bench.{name}.{os.getpid()}.{self._topics}"
        ensure_topics_blocking(
            self.kafka_bootstrap,
            chancery_topics(topic, f"{topic}.dlq", partitions=partitions),
        )
        return topic

    def redis_db(self, db: int) -> str:
        """A Redis URL on database `db` of the run's server (flush it before use)."""
        base = self.redis_url.rsplit("/", 1)[0]
        return f"{base}/{db}"


@contextmanager
def local_servers() -> Iterator[BenchEnv]:
    """One Kafka and one Redis on free ports, unless CHANCERY_BENCH_KAFKA/REDIS are given."""
    kafka_env = os.environ.get("CHANCERY_BENCH_KAFKA_BOOTSTRAP")
    redis_env = os.environ.get("CHANCERY_BENCH_REDIS_URL")
    root = Path(tempfile.mkdtemp(prefix="chancery-bench-servers-"))
    kafka = redis = None
    try:
        if kafka_env is None:
            port, controller = free_ports(2)
            kafka = KafkaServer(port=port, controller_port=controller, data_dir=root / "kafka")
            kafka.start()
        if redis_env is None:
            (rport,) = free_ports(1)
            redis = RedisServer(port=rport, data_dir=root / "redis", persistence="none")
            redis.start()
        if kafka is not None:
            kafka.wait_ready(120)
        if redis is not None:
            redis.wait_ready(30)
        yield BenchEnv(
            kafka_bootstrap=kafka_env or (kafka.bootstrap_servers if kafka else ""),
            redis_url=redis_env or (redis.url() if redis else ""),
            kafka=kafka,
            redis=redis,
        )
    finally:
        for server in (redis, kafka):
            if server is not None:
                server.stop()


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of samples, by linear interpolation."""
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def print_table(rows: Sequence[Row]) -> str:
    headers = ("benchmark", "measure", "baseline", "ours", "ratio", "target", "met")
    lines = [headers]
    for r in rows:
        lines.append(
            (
                r.benchmark,
                f"{r.measure} ({r.unit})",
                "-" if r.baseline is None else f"{r.baseline:,.2f}",
                f"{r.ours:,.2f}",
                "-" if r.ratio is None else f"{r.ratio:.2f}",
                r.target,
                {True: "yes", False: "NO", None: "-"}[r.met],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [f"- {r.benchmark} / {r.measure}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", *notes] if notes else []))


def save(rows: Sequence[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**asdict(r), "ratio": r.ratio} for r in rows], indent=2) + "\n")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its live children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue  # gone (or not Linux)
        total += (int(stat[11]) + int(stat[12])) / tick
        todo += [int(c) for c in children]
    return total
