"""Webhook subscriptions: what one is, what state it is in, and what each delivery attempt was.

Pure models, shared by the API (which creates and manages subscriptions) and the delivery
worker (which delivers them); `chancery.keyspace` stores them. A subscription names a target
URL, the events it wants (`SubscriptionFilters`, the live stream's filters), the CloudEvents
content mode of the requests, and its Standard Webhooks signing secret.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chancery.domain.relations import Pair
from chancery.domain.selection import EventFilter

ContentMode = Literal["structured", "binary"]
"""How an event travels in the request (the CloudEvents HTTP binding): `structured`, the
event as the log holds it as the body (`application/cloudevents+json`); `binary`, the
attributes in `ce-*` headers and the data as the body."""

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
"""Standard Webhooks: a random secret of 24 to 64 bytes, shown base64-encoded after `whsec_`."""

SUBSCRIPTION_ID_PATTERN = r"^sub_[0-9a-f]{20}$"
WEBHOOK_ID_PREFIX = "evt_"


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


def new_subscription_id() -> str:
    return f"sub_{secrets.token_hex(10)}"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key a `whsec_` secret stands for (what the HMAC is keyed with)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def webhook_id(event_key: str) -> str:
    """The `webhook-id` of an event: its identity's digest (`chancery.contract.event_key`).

    Not the event's own `id`: ids are unique per source only, and a client chooses them (they
    may hold `.`, which the signed content `{id}.{timestamp}.{body}` must not). The digest of
    (source, id) is the CloudEvents identity, the same on every retry and redelivery."""
    return WEBHOOK_ID_PREFIX + event_key


def pair_text(pair: Pair) -> str:
    return f"{pair.first}-{pair.second}"


class SubscriptionFilters(BaseModel):
    """The events a subscription wants, as validated and normalised (the stream's filters):
    upper-case codes, full type names, pairs as `CHN-USA` in sorted order. Empty: any."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    pair: tuple[str, ...] = ()
    person: tuple[str, ...] = ()

    @classmethod
    def of(cls, chosen: EventFilter) -> SubscriptionFilters:
        return cls(
            type=tuple(sorted(chosen.types or ())),
            country=tuple(sorted(chosen.countries or ())),
            pair=tuple(sorted(pair_text(p) for p in chosen.pairs or ())),
            person=tuple(sorted(chosen.people or ())),
        )

    def event_filter(self) -> EventFilter:
        return EventFilter(
            types=frozenset(self.type) or None,
            countries=frozenset(self.country) or None,
            pairs=frozenset(Pair.of(*p.split("-", 1)) for p in self.pair) or None,
            people=frozenset(self.person) or None,
        )


class Subscription(BaseModel):
    """A subscription as created: none of this changes afterwards."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=SUBSCRIPTION_ID_PATTERN)]
    url: str
    filters: SubscriptionFilters
    mode: ContentMode = "structured"
    created: datetime
    created_by: str
    start: str
    """The position token delivery started after."""
    secret: str


class SubscriptionStatus(BaseModel):
    """What changes: active or paused (and why), the last failure, since when it fails."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: SubscriptionState = SubscriptionState.ACTIVE
    reason: str | None = None
    last_error: str | None = None
    failing_since: datetime | None = None
    changed: datetime | None = None


class DeliveryAttempt(BaseModel):
    """One attempt to deliver one event to a subscription's target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    webhook_id: str
    event_id: str
    event_source: str
    event_type: str
    partition: int
    offset: int
    attempt: int = Field(ge=1, description="1 for the first attempt at this event, then 2, ...")
    status: int | None = Field(description="The receiver's HTTP status; none without answer.")
    latency_ms: float
    error: str | None = None
    outcome: Literal["delivered", "failed"]
