"""Routes: webhook subscriptions (push delivery of the log), managed by their owners.

The API hosts these routes; `chancery deliver` delivers (services/webhooks). Every route
takes the scope `subscriptions:write`: a subscription's target and filters are its owner's
business, and a browser session (read-only) never reaches them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from chancery.auth import Principal, Scope, utcnow
from chancery.positions import Position
from chancery.subscriptions import (
    SUBSCRIPTION_ID_PATTERN,
    ContentMode,
    DeliveryAttempt,
    Subscription,
    SubscriptionFilters,
    SubscriptionState,
    SubscriptionStatus,
    new_secret,
    new_subscription_id,
)
from services.api import params
from services.api.context import ApiContext, context_of
from services.api.errors import SubscriptionNotFoundError
from services.api.reader import Snapshot
from services.webhooks.store import SubscriptionRecord

from .common import Context

router = APIRouter(tags=["subscriptions"])

MAX_VALUES = 100
DELIVERIES_SHOWN = 100


async def _owner(request: Request) -> Principal:
    principal = context_of(request).principals.authenticate(
        request.headers.get("authorization"), now=utcnow()
    )
    principal.require(Scope.SUBSCRIPTIONS_WRITE)
    return principal


Owner = Annotated[Principal, Depends(_owner)]
SubscriptionId = Annotated[
    str,
    Path(
        pattern=SUBSCRIPTION_ID_PATTERN,
        description="The subscription's id (`sub_` and 20 hex digits).",
        examples=["sub_0f3c9a7be21d44c8a0b1"],
    ),
]


class FiltersIn(BaseModel):
    """The stream's filters: any of the values of a kind, and every kind given."""

    model_config = ConfigDict(extra="forbid")

    type: list[str] = Field(
        default_factory=list,
        max_length=MAX_VALUES,
        description="Event types, full or short (`meeting.held`).",
        examples=[["meeting.held", "relations.changed"]],
    )
    country: list[str] = Field(
        default_factory=list,
        max_length=MAX_VALUES,
        description="Events involving one of these states or organisations.",
        examples=[["CHN"]],
    )
    pair: list[str] = Field(
        default_factory=list,
        max_length=MAX_VALUES,
        description="Events of one of these pairs' relations (`CHN-USA`).",
        examples=[["CHN-USA"]],
    )
    person: list[str] = Field(
        default_factory=list,
        max_length=MAX_VALUES,
        description="Events naming one of these people (`li-hui`).",
        examples=[["li-hui"]],
    )


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.org/chancery",
                    "filters": {"country": ["CHN"], "type": ["meeting.held"]},
                    "mode": "structured",
                }
            ]
        },
    )

    url: str = Field(
        max_length=2048,
        description="Where to POST each event: http(s), a public address (unless "
        "CHANCERY_WEBHOOK_ALLOWED_NETWORKS allows more). Redirects are not followed.",
    )
    filters: FiltersIn = Field(default_factory=FiltersIn)
    after: str | None = Field(
        default=None,
        description="Deliver the events after this position token (an SSE id, or a position "
        "ingest returned; `chancery.events@` for the whole log). Default: now, after what "
        "the read models have applied.",
        examples=["chancery.events@0:41,3:7"],
    )
    mode: ContentMode = Field(
        default="structured",
        description="`structured`: the CloudEvent as the body; `binary`: its attributes in "
        "`ce-*` headers and its data as the body.",
    )


class SubscriptionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    filters: SubscriptionFilters
    mode: ContentMode
    created: datetime
    start: str = Field(description="The position delivery started after.")
    state: SubscriptionState
    reason: str | None = Field(description="Why it is paused.")
    last_error: str | None = Field(description="The last failed attempt's error.")
    failing_since: datetime | None = Field(
        description="Since when attempts fail with no delivery in between."
    )
    position: str = Field(description="Delivered up to here (a position token).")
    lag: int | None = Field(
        description="Events in the log after the position (any filter), as far as the "
        "read models have seen the log's end."
    )


class CreatedSubscription(SubscriptionView):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, `whsec_<base64>`): shown once, "
        "here. Verify each request's `webhook-signature` with it."
    )


class SubscriptionsBody(BaseModel):
    subscriptions: list[SubscriptionView]


class DeliveriesBody(BaseModel):
    subscription: str
    deliveries: list[DeliveryAttempt] = Field(description="Recent attempts, newest first.")


def _view(ctx: ApiContext, record: SubscriptionRecord, snapshot: Snapshot | None) -> dict[str, Any]:
    sub, status = record.subscription, record.status
    lag = None
    if snapshot is not None:
        lag = sum(
            max(0, p.high_watermark - (record.position.get(p.partition, -1) + 1))
            for p in snapshot.progress
        )
    return {
        "id": sub.id,
        "url": sub.url,
        "filters": sub.filters,
        "mode": sub.mode,
        "created": sub.created,
        "start": sub.start,
        "state": status.state,
        "reason": status.reason,
        "last_error": status.last_error,
        "failing_since": status.failing_since,
        "position": Position(ctx.settings.topic, dict(record.position)).token(),
        "lag": lag,
    }


async def _snapshot(ctx: ApiContext) -> Snapshot | None:
    from services.api.reader import NotReadyError

    try:
        return await ctx.reader.snapshot()
    except NotReadyError:
        return None


async def _record(ctx: ApiContext, subscription_id: str) -> SubscriptionRecord:
    record = await ctx.subscriptions.get(subscription_id)
    if record is None:
        raise SubscriptionNotFoundError(subscription_id)
    return record


_VIEW_EXAMPLE: dict[str, Any] = {
    "id": "sub_0f3c9a7be21d44c8a0b1",
    "url": "https://hooks.example.org/chancery",
    "filters": {"type": ["diplomacy.meeting.held"], "country": ["CHN"], "pair": [], "person": []},
    "mode": "structured",
    "created": "2026-12-06T10:00:00Z",
    "start": "chancery.events@0:41,3:7",
    "state": "active",
    "reason": None,
    "last_error": None,
    "failing_since": None,
    "position": "chancery.events@0:58,3:9",
    "lag": 0,
}
_ATTEMPT_EXAMPLE: dict[str, Any] = {
    "at": "2026-12-06T10:00:01.204Z",
    "webhook_id": "evt_5b0f0d5c8a3a4b1e9d7c6f2e1a0b3c4d",
    "event_id": "wang-yi-sullivan-vienna-talks",
    "event_source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
    "event_type": "diplomacy.meeting.held",
    "partition": 3,
    "offset": 8,
    "attempt": 2,
    "status": 200,
    "latency_ms": 12.4,
    "outcome": "delivered",
}


def _example(status: int, example: dict[str, Any], description: str) -> dict[int | str, Any]:
    return {
        status: {"description": description, "content": {"application/json": {"example": example}}}
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials."},
    403: {"description": "The credentials lack the scope subscriptions:write."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No subscription has this id."}}


@router.post(
    "/v1/subscriptions",
    status_code=201,
    response_model=CreatedSubscription,
    summary="Subscribe a URL to events (webhooks)",
    responses={
        **_example(
            201,
            {**_VIEW_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="},
            "Created; the secret is shown this once.",
        ),
        **ERRORS,
        400: {"description": "The body is not JSON."},
        422: {
            "description": "A bad field, named in the problem: a URL that is not http(s) or "
            "not a public address, an unknown filter value, a bad position."
        },
        503: {"description": "The read models are being rebuilt (no `after` given)."},
    },
)
async def create_subscription(
    body: SubscriptionRequest, ctx: Context, owner: Owner, response: Response
) -> dict[str, Any]:
    """Every event the filters choose, from `after` on, is POSTed to `url` as a CloudEvent,
    signed as Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`). See
    the README's Webhooks section for the request and how to verify it."""
    chosen = params.event_filter(
        body.filters.type,
        body.filters.country,
        body.filters.pair,
        body.filters.person,
        prefix="filters.",
    )
    await ctx.targets.check(body.url)
    snapshot = await ctx.reader.snapshot()
    if body.after is None:
        start = snapshot.applied
    elif body.after.strip() == f"{ctx.reader.topic}@":
        start = {}
    else:
        given = params.position(
            body.after, topic=ctx.reader.topic, partitions=snapshot.partitions, field="after"
        )
        start = dict(given.offsets)
    now = ctx.clock()
    subscription = Subscription(
        id=new_subscription_id(),
        url=body.url,
        filters=SubscriptionFilters.of(chosen),
        mode=body.mode,
        created=now,
        created_by=f"{owner.kind}:{owner.subject}",
        start=Position(ctx.reader.topic, start).token(),
        secret=new_secret(),
    )
    await ctx.subscriptions.create(subscription, start)
    record = SubscriptionRecord(subscription, SubscriptionStatus(changed=now), start)
    response.headers["Location"] = f"/v1/subscriptions/{subscription.id}"
    return {**_view(ctx, record, snapshot), "secret": subscription.secret}


@router.get(
    "/v1/subscriptions",
    response_model=SubscriptionsBody,
    summary="Every subscription, with its state and position",
    responses={**_example(200, {"subscriptions": [_VIEW_EXAMPLE]}, "Every one."), **ERRORS},
)
async def list_subscriptions(ctx: Context, _: Owner) -> dict[str, Any]:
    snapshot = await _snapshot(ctx)
    records = await ctx.subscriptions.every()
    return {"subscriptions": [_view(ctx, r, snapshot) for r in records]}


@router.get(
    "/v1/subscriptions/{subscription_id}",
    response_model=SubscriptionView,
    summary="One subscription: state, position, lag, last error",
    responses={**_example(200, _VIEW_EXAMPLE, "The subscription."), **ERRORS, **NOT_FOUND},
)
async def get_subscription(
    subscription_id: SubscriptionId, ctx: Context, _: Owner
) -> dict[str, Any]:
    return _view(ctx, await _record(ctx, subscription_id), await _snapshot(ctx))


@router.delete(
    "/v1/subscriptions/{subscription_id}",
    status_code=204,
    summary="Delete a subscription (delivery stops within a second or so)",
    responses={**ERRORS, **NOT_FOUND},
)
async def delete_subscription(subscription_id: SubscriptionId, ctx: Context, _: Owner) -> Response:
    if not await ctx.subscriptions.delete(subscription_id):
        raise SubscriptionNotFoundError(subscription_id)
    return Response(status_code=204)


async def _set_state(
    ctx: ApiContext, subscription_id: str, state: SubscriptionState, reason: str | None
) -> dict[str, Any]:
    record = await _record(ctx, subscription_id)
    status = record.status
    if status.state != state:
        status = SubscriptionStatus(
            state=state,
            reason=reason,
            last_error=status.last_error,
            # A resume starts the failure clock afresh.
            failing_since=status.failing_since if state == SubscriptionState.PAUSED else None,
            changed=ctx.clock(),
        )
        updated = await ctx.subscriptions.set_status(subscription_id, status)
        if updated is None:
            raise SubscriptionNotFoundError(subscription_id)
        record = updated
    return _view(ctx, record, await _snapshot(ctx))


@router.post(
    "/v1/subscriptions/{subscription_id}/pause",
    response_model=SubscriptionView,
    summary="Pause delivery (it resumes from the same position)",
    responses={
        **_example(
            200, {**_VIEW_EXAMPLE, "state": "paused", "reason": "paused by api-key ops"}, "Paused."
        ),
        **ERRORS,
        **NOT_FOUND,
    },
)
async def pause_subscription(
    subscription_id: SubscriptionId, ctx: Context, owner: Owner
) -> dict[str, Any]:
    reason = f"paused by {owner.kind} {owner.subject}"
    return await _set_state(ctx, subscription_id, SubscriptionState.PAUSED, reason)


@router.post(
    "/v1/subscriptions/{subscription_id}/resume",
    response_model=SubscriptionView,
    summary="Resume delivery from where it stopped",
    responses={**_example(200, _VIEW_EXAMPLE, "Active again."), **ERRORS, **NOT_FOUND},
)
async def resume_subscription(
    subscription_id: SubscriptionId, ctx: Context, _: Owner
) -> dict[str, Any]:
    return await _set_state(ctx, subscription_id, SubscriptionState.ACTIVE, None)


@router.get(
    "/v1/subscriptions/{subscription_id}/deliveries",
    response_model=DeliveriesBody,
    summary="Recent delivery attempts: status, latency, error, attempt, event",
    responses={
        **_example(
            200,
            {"subscription": _VIEW_EXAMPLE["id"], "deliveries": [_ATTEMPT_EXAMPLE]},
            "Newest first.",
        ),
        **ERRORS,
        **NOT_FOUND,
    },
)
async def subscription_deliveries(
    subscription_id: SubscriptionId,
    ctx: Context,
    _: Owner,
    limit: Annotated[
        int, Query(ge=1, le=DELIVERIES_SHOWN, description="How many, newest first.")
    ] = 20,
) -> dict[str, Any]:
    await _record(ctx, subscription_id)
    attempts = await ctx.subscriptions.deliveries(subscription_id, limit)
    return {"subscription": subscription_id, "deliveries": attempts}


# --- the request a subscriber receives (OpenAPI 3.1 `webhooks`) ---------------------------------

_EVENT_EXAMPLE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "wang-yi-sullivan-vienna-talks",
    "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
    "type": "diplomacy.meeting.held",
    "time": "2023-05-12T00:00:00Z",
    "datacontenttype": "application/json",
    "recordedtime": "2026-12-06T10:00:00.250000Z",
    "partitionkey": "CHN|USA",
    "data": {"occurred": "2023-05-10/2023-05-11", "parties": ["CHN", "USA"], "city": "Vienna"},
}

WEBHOOK_DESCRIPTION = """
What `chancery deliver` POSTs to a subscription's URL, once per chosen event, at least once.

- **Body** (structured mode, the default): the CloudEvent exactly as the log holds it,
  `Content-Type: application/cloudevents+json`. In binary mode: the event's `data` as the
  body (`Content-Type: application/json`), every other attribute in a `ce-<name>` header
  (`ce-id`, `ce-source`, `ce-type`, `ce-specversion`, `ce-time`, `ce-recordedtime`,
  `ce-partitionkey`, ...), percent-encoded as the CloudEvents HTTP binding says.
- **Signature** (Standard Webhooks): `webhook-signature: v1,<base64 HMAC-SHA256>` over
  `{webhook-id}.{webhook-timestamp}.{body}`, keyed by the base64-decoded part of the
  subscription's `whsec_` secret. Refuse a timestamp more than a few minutes off.
- **Dedupe** by `webhook-id` (`evt_` and the digest of the event's source and id): a retry
  or a redelivery after a crash carries the same id and the same body.
- **Answer** 2xx within 15 s to acknowledge. Anything else (or no answer) is retried with
  exponential backoff and jitter, honouring `Retry-After`; after too many failures the
  subscription is paused with the last error. `410 Gone` pauses it at once. Redirects are
  not followed.
- **Order**: one subject's events (the event's `partitionkey`) arrive one at a time, in log
  order; different subjects arrive in parallel.
"""


def document_webhook(app: FastAPI) -> None:
    """Describe the webhook request in the API's OpenAPI document (its `webhooks` member)."""

    @app.webhooks.post(
        "chancery-event",
        summary="An event, pushed to a subscription's URL",
        description=WEBHOOK_DESCRIPTION,
        status_code=204,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/cloudevents+json": {
                        "schema": _PUSHED_EVENT_SCHEMA,
                        "example": _EVENT_EXAMPLE,
                    },
                    "application/json": {
                        "schema": {"type": "object", "description": "Binary mode: the data."},
                        "example": _EVENT_EXAMPLE["data"],
                    },
                },
            }
        },
        responses={
            204: {"description": "Any 2xx acknowledges the event."},
            410: {"description": "Pauses the subscription: the receiver wants no more."},
            503: {"description": "Any other answer is retried (Retry-After is honoured)."},
        },
    )
    async def chancery_event(
        webhook_id: Annotated[
            str,
            Header(
                alias="webhook-id",
                description="The dedupe key: the same on every retry and redelivery.",
                examples=["evt_5b0f0d5c8a3a4b1e9d7c6f2e1a0b3c4d"],
            ),
        ],
        webhook_timestamp: Annotated[
            int,
            Header(
                alias="webhook-timestamp",
                description="Unix seconds of this attempt.",
                examples=[1765015200],
            ),
        ],
        webhook_signature: Annotated[
            str,
            Header(
                alias="webhook-signature",
                description="`v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>`.",
                examples=["v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="],
            ),
        ],
    ) -> None:
        """Documentation only: the API serves no such route."""


_PUSHED_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Chancery CloudEvent as the log holds it (schemas/ has each type's).",
    "required": ["specversion", "id", "source", "type", "time", "data"],
    "properties": {
        "specversion": {"type": "string", "const": "1.0"},
        "id": {"type": "string"},
        "source": {"type": "string"},
        "type": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string"},
        "recordedtime": {"type": "string", "format": "date-time"},
        "partitionkey": {"type": "string"},
        "data": {"type": "object"},
    },
}
