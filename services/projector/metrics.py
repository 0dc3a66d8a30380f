"""Prometheus metrics of the projector, in a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ProjectorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.applied = Counter(
            "chancery_projector_events_applied",
            "Events applied to the read models.",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "chancery_projector_events_duplicate",
            "Events skipped because their (source, id) was already applied.",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "chancery_projector_events_dead_lettered",
            "Poison events parked in the dead-letter topic, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.fenced = Counter(
            "chancery_projector_batches_fenced",
            "Batches refused because another instance had moved the partition's offset.",
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "chancery_projector_batch_seconds",
            "Time to plan and apply one partition batch.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.applied_offset = Gauge(
            "chancery_projector_applied_offset",
            "Last offset applied, per partition.",
            ["partition"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "chancery_projector_lag_events",
            "Events in the log not yet applied, per partition.",
            ["partition"],
            registry=self.registry,
        )
        self.version = Gauge(
            "chancery_projector_read_model_version",
            "The read-model version this projector writes.",
            registry=self.registry,
        )
        self.stream_skipped = Counter(
            "chancery_projector_stream_entries_skipped",
            "Stream entries not added because the stream was ahead of the stored offset.",
            registry=self.registry,
        )
