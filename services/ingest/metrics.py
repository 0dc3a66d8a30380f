"""Prometheus metrics of the ingest service, in a registry of its own per app."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.accepted = Counter(
            "chancery_ingest_events_accepted",
            "Events accepted (appended, or recognised as already appended).",
            ["outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "chancery_ingest_events_rejected",
            "Requests or events refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.publish_latency = Histogram(
            "chancery_ingest_publish_seconds",
            "Time to get a request's events acknowledged by Kafka.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "chancery_ingest_requests_in_flight",
            "HTTP requests being served.",
            registry=self.registry,
        )
