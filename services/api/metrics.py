"""Prometheus metrics of the API, in a registry of its own per app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "chancery_api_requests",
            "HTTP requests answered, by route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chancery_api_request_seconds",
            "Time to answer a request (to the end of the body; streams excluded).",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.min_position_wait = Histogram(
            "chancery_api_min_position_wait_seconds",
            "Time spent waiting for min_position to be applied.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.min_position_timeouts = Counter(
            "chancery_api_min_position_timeouts",
            "Reads answered 504 because min_position was not applied in time.",
            registry=self.registry,
        )
        self.not_ready = Counter(
            "chancery_api_not_ready",
            "Reads answered 503 because the read models were being rebuilt.",
            registry=self.registry,
        )
        self.streams_open = Gauge(
            "chancery_api_streams_open",
            "Server-Sent Event streams open.",
            registry=self.registry,
        )
        self.streams_refused = Counter(
            "chancery_api_streams_refused",
            "Streams refused because the client had too many open.",
            registry=self.registry,
        )


class MetricsMiddleware:
    """Pure ASGI: counts each response by route template and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._kept: dict[tuple[str, int], tuple[Counter, Histogram | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            counted, timed = self._children(template, status)
            counted.inc()
            if timed is not None:
                timed.observe(time.perf_counter() - started)

    def _children(self, template: str, status: int) -> tuple[Counter, Histogram | None]:
        """The metrics' children of a route and status, looked up once (templates and
        statuses are few)."""
        key = (template, status)
        children = self._kept.get(key)
        if children is None:
            counted = self.metrics.requests.labels(template, str(status))
            timed = None if template == "/v1/stream" else self.metrics.latency.labels(template)
            children = self._kept[key] = (counted, timed)
        return children
