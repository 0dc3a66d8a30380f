"""Prometheus metrics of the ingest service, in a registry of its own per app.

With several worker processes (`CHANCERY_INGEST_WORKERS`), `python -m services.ingest` sets
`PROMETHEUS_MULTIPROC_DIR` before any worker starts: each worker then writes its values to
files there, and `/metrics`, whichever worker answers, reports the sum over all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    """True when metric values live in files shared by the worker processes."""
    return bool(os.environ.get(MULTIPROCESS_DIR))


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.accepted = Counter(
            "chancery_ingest_events_accepted",
            "Events accepted: appended to the log, or recognised as already there (duplicate).",
            ["outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "chancery_ingest_events_rejected",
            "Events refused, by reason (a request refused before its events were counted, "
            "such as unauthenticated or malformed JSON, counts as one).",
            ["reason"],
            registry=self.registry,
        )
        # The children every accepted request touches, bound once (`labels()` takes a lock).
        self.appended = self.accepted.labels("appended")
        self.duplicates = self.accepted.labels("duplicate")
        self.publish_latency = Histogram(
            "chancery_ingest_publish_seconds",
            "Time from handing a request's new events to Kafka to their acknowledgement.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "chancery_ingest_requests_in_flight",
            "Ingest HTTP requests being served (POST /v1/...).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.settling = Gauge(
            "chancery_ingest_unknown_outcomes",
            "Requests whose events Kafka has neither acknowledged nor refused yet (their "
            "identities stay claimed until it does).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def exposition(self) -> bytes:
        """The text format of every metric: this process's, or all workers' summed."""
        if not multiprocess():
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def process_exits(self) -> None:
        """A worker stopping: its live gauges leave the sums (counters stay counted)."""
        if multiprocess():
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
