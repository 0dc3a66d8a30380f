"""What a request handler of ingest can reach: built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from chancery.auth import Authenticator
from chancery.settings import IngestSettings

from .idempotency import IdempotencyStore
from .metrics import IngestMetrics
from .publisher import EventPublisher
from .service import IngestService


@dataclass(frozen=True)
class IngestContext:
    settings: IngestSettings
    service: IngestService
    publisher: EventPublisher
    idempotency: IdempotencyStore
    authenticator: Authenticator
    metrics: IngestMetrics


def context_of(request: Request) -> IngestContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, IngestContext)
    return ctx


async def context_dependency(request: Request) -> IngestContext:
    """`context_of` as a dependency: async, so FastAPI does not hop to a worker thread."""
    return context_of(request)
