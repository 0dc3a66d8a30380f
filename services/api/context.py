"""What a request handler of the API can reach: built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from fastapi import Request

from chancery.auth import Authenticator
from chancery.settings import ApiSettings
from services.webhooks.store import SubscriptionStore
from services.webhooks.targets import TargetPolicy

from .body_cache import BodyCache
from .metrics import ApiMetrics
from .principals import VerifiedPrincipals
from .reader import ReadModelReader
from .stream_slots import StreamSlots


@dataclass(frozen=True)
class ApiContext:
    settings: ApiSettings
    reader: ReadModelReader
    authenticator: Authenticator
    metrics: ApiMetrics
    streams: StreamSlots
    clock: Callable[[], datetime]
    bodies: BodyCache
    principals: VerifiedPrincipals
    subscriptions: SubscriptionStore
    targets: TargetPolicy

    def today(self) -> date:
        """The day "now" answers are read on (UTC)."""
        return self.clock().astimezone(UTC).date()


def context_of(request: Request) -> ApiContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ApiContext)
    return ctx
