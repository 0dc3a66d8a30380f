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
        )
        self.settling = Gauge(
            "chancery_ingest_unknown_outcomes",
            "Requests whose events Kafka has neither acknowledged nor refused yet (their "
            "identities stay claimed until it does).",
            registry=self.registry,
        )
